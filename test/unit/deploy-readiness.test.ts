import { describe, expect, it } from 'vitest';
import type { Backend } from '../../src/engine/model/backend.js';
import type { StateStore } from '../../src/engine/runtime/state-store.js';
import { GATING_REASON, withoutGating } from '../../src/engine/deploy/readiness.js';

class MemoryStore implements StateStore {
  readonly location = 'memory';
  constructor(private readonly data: Record<string, unknown>) {}
  async get<T>(key: string) {
    if (key === 'deploy-broken') throw new Error('unreadable');
    return this.data[key] as T | undefined;
  }
  async put() {}
  async delete() {}
  async keys() {
    return Object.keys(this.data);
  }
}

const backend = (id: string, labels: Record<string, string>, source: Backend['source'] = 'docker'): Backend => ({
  id: `${source}:${id}`,
  name: id,
  service: labels['elastic.service'] ?? 'web',
  source,
  address: '198.18.0.2',
  port: 80,
  state: 'running',
  health: 'none',
  labels,
  since: '1970-01-01T00:00:00.000Z',
});
const managed = (id: string, svc: string) => backend(id, { 'elastic.managed': 'true', 'elastic.service': svc });
const state = (svc: string, gating?: unknown) => ({ v: 1, service: svc, current: { revision: 'r' }, phase: 'rolling', gating, updated: '' });

describe('withoutGating: deployed replicas wait for their gate', () => {
  const store = new MemoryStore({ 'deploy-api': state('api', ['aaaaaaaaaaaa']), 'deploy-old': state('old'), 'deploy-odd': state('odd', 'not a list') });
  const cases: Array<[string, Backend, boolean]> = [
    ['a replica its deploy lists as gating is left out', managed('aaaaaaaaaaaa', 'api'), false],
    ['a replica that passed (not listed) is served', managed('bbbbbbbbbbbb', 'api'), true],
    ['a deploy state without gating (older elastic) serves all', managed('aaaaaaaaaaaa', 'old'), true],
    ['a malformed gating field serves all', managed('aaaaaaaaaaaa', 'odd'), true],
    ['no deploy state (another state dir) serves all', managed('aaaaaaaaaaaa', 'elsewhere'), true],
    ['an unreadable state serves all', managed('aaaaaaaaaaaa', 'broken'), true],
    ['a service name that is not an identifier serves all', managed('aaaaaaaaaaaa', '../x'), true],
    ['a container not managed by deploy is not looked up', backend('aaaaaaaaaaaa', { 'elastic.service': 'api' }), true],
    ['a static backend is not looked up', backend('198.18.0.2:80', { 'elastic.managed': 'true', 'elastic.service': 'api' }, 'static'), true],
  ];
  it.each(cases)('%s', async (_name, b, served) => {
    const r = await withoutGating([b], store);
    expect(r.backends.length === 1).toBe(served);
    expect(r.skipped).toEqual(served ? [] : [{ id: b.id.slice('docker:'.length), reason: GATING_REASON }]);
  });
});
