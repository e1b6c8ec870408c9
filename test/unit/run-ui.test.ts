import { describe, expect, it } from 'vitest';
import { checkText, onceText } from '../../src/ui/run.js';
import type { CheckResult, OnceResult } from '../../src/engine/run.js';

describe('run: plain-text results', () => {
  it('--check lists sources, services, deploys and endpoints', () => {
    const r = {
      v: 1,
      ok: true,
      config: {
        file: 'elastic.yaml',
        hash: 'c8e89ef9c723',
        sources: { web: 'docker', legacy: 'static' },
        services: { web: ['haproxy', 'map-image'], jobs: ['edge'] },
        deploys: ['shop'],
        metrics: { prometheus: '127.0.0.1:18806/metrics', statsd: null },
        api: null,
      },
    } as unknown as CheckResult;
    expect(checkText(r)).toBe(
      [
        'elastic.yaml: ok (config c8e89ef9c723)',
        '  source  web  docker',
        '  source  legacy  static',
        '  service web  haproxy, map-image',
        '  service jobs  edge',
        '  deploy  shop',
        '  metrics http://127.0.0.1:18806/metrics',
        '',
      ].join('\n'),
    );
  });

  it('--once says what each applier did', () => {
    expect(onceText({ appliers: { 'haproxy:web': 'applied', 'map-image:web': 'unchanged' } } as unknown as OnceResult)).toBe('haproxy:web: applied\nmap-image:web: unchanged\n');
  });
});
