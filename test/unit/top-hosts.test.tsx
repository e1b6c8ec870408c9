import { afterEach, describe, expect, it } from 'vitest';
import React from 'react';
import { cleanup, render } from 'ink-testing-library';
import { TopApp } from '../../src/ui/top/App.js';
import { TopStore } from '../../src/engine/top/store.js';
import { adaptSnapshot } from '../../src/engine/top/adapters.js';
import { adaptFleet } from '../../src/engine/top/fleet.js';
import { topText } from '../../src/ui/top/plain.js';
import type { Snapshot } from '../../src/engine/runtime/status.js';

/**
 * The Hosts view (issue 15): a fleet's hosts as `cluster status` sees them, from top's own store
 * read (--etcd) or from a fleet daemon's status socket (`fleet` in its snapshot).
 */
const status = {
  v: 1,
  fleet: 'edge',
  version: 7,
  hash: 'abc',
  leader: 'lb-2',
  converged: false,
  hosts: [
    { name: 'lb-1', alive: true, appliedVersion: 7, converged: true, refusal: null, services: { web: { backends: 3, healthy: 3, refused: null }, api: { backends: 2, healthy: 1, refused: null } } },
    { name: 'lb-2', alive: true, appliedVersion: 7, converged: true, refusal: null, services: { web: { backends: 3, healthy: 3, refused: null } } },
    { name: 'lb-3', alive: false, appliedVersion: 6, converged: false, refusal: { version: 7, message: 'web: 0 backends, below --min-backends 1', at: 'x' }, services: {} },
  ],
};

const snapshot = (fleet: unknown): Snapshot => ({ v: 1, kind: 'run', name: 'edge', pid: 42, started: '2025-01-01T00:00:00Z', time: '2025-01-01T00:00:01Z', config: {}, services: {}, events: [], fleet });

const frame = async (app: ReturnType<typeof render>, want: string) => {
  const end = Date.now() + 3000;
  while (!(app.lastFrame() ?? '').includes(want)) {
    if (Date.now() > end) throw new Error(`frame never showed ${want}:\n${app.lastFrame()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return (app.lastFrame() ?? '').split('\n').map((l) => l.trimEnd());
};

afterEach(() => cleanup());

describe('top: Hosts view', () => {
  it('key 4 shows every host: state, applied, converged, leader, backends per service, refusal', async () => {
    const store = new TopStore();
    store.setFleet(adaptFleet(status, 'etcd'));
    const app = render(<TopApp store={store} intervalMs={1000} color={false} width={120} height={12} />);
    app.stdin.write('4');
    const l = await frame(app, 'lb-3');
    expect(l.some((x) => x.includes('[4 Hosts]'))).toBe(true);
    expect(l.find((x) => x.startsWith('fleet edge'))).toBe('fleet edge  version 7  leader lb-2  NOT converged  (from etcd)');
    expect(l.find((x) => /^(> | {2})lb-1/.test(x))).toMatch(/^> lb-1\s+alive\s+v7\s+yes\s+api 1\/2  web 3\/3$/);
    expect(l.find((x) => /^(> | {2})lb-2/.test(x))).toMatch(/^ {2}lb-2\s+alive\s+v7\s+yes\s+leader\s+web 3\/3$/);
    expect(l.find((x) => /^(> | {2})lb-3/.test(x))).toMatch(/^ {2}lb-3\s+stale\s+v6\s+no\s+-  refused v7: web: 0 backends, below --min-backends 1$/);
    // The filter works on hosts too.
    app.stdin.write('/');
    for (const ch of 'stale') app.stdin.write(ch);
    app.stdin.write('\r');
    const f = await frame(app, 'filter: stale');
    expect(f.filter((x) => /^(> | {2})lb-/.test(x)).map((x) => x.trim().split(/\s+/)[x.startsWith('>') ? 1 : 0])).toEqual(['lb-3']);
  });

  it('from a fleet daemon\'s status socket; not a fleet: says how to get one', async () => {
    const store = new TopStore();
    store.ingest(adaptSnapshot(snapshot(undefined)), Date.parse('2025-01-01T00:00:01Z'));
    const app = render(<TopApp store={store} intervalMs={1000} color={false} width={140} height={12} initial={{ view: 'hosts' }} />);
    await frame(app, 'not a fleet: give --etcd URL --fleet NAME');
    cleanup();
    store.ingest(adaptSnapshot(snapshot(status)), Date.parse('2025-01-01T00:00:02Z'));
    const app2 = render(<TopApp store={store} intervalMs={1000} color={false} width={140} height={12} initial={{ view: 'hosts' }} />);
    const l = await frame(app2, 'lb-2');
    expect(l.find((x) => x.startsWith('fleet edge'))).toContain('(from run.edge)');
  });

  it('a hostile socket cannot put escapes or unbounded rows in the view', () => {
    const evil = { ...status, fleet: 'e\u001b[2Jdge', hosts: [...Array.from({ length: 300 }, (_, i) => ({ name: `h${i}\u0007`, alive: 'yes', appliedVersion: -1, services: { ['s\n']: { backends: 1.5 } } })), 'junk'] };
    const f = adaptFleet(evil, 'run.x')!;
    expect(f.hosts).toHaveLength(256);
    expect(JSON.stringify(f)).not.toMatch(/\\u001b|\\u0007|\\n/);
    expect(f.hosts[0]).toMatchObject({ alive: false, appliedVersion: null, services: [{ backends: 0 }] });
    expect(adaptFleet({ fleet: 1, hosts: [] }, 'x')).toBeNull();
  });

  it('plain output (--once, a pipe) has a Hosts table', () => {
    const store = new TopStore();
    store.setFleet(adaptFleet(status, 'etcd'));
    const out = topText(store.state());
    expect(out).toContain('fleet edge  version 7  leader lb-2  NOT converged  (from etcd)');
    expect(out).toMatch(/^lb-3\s+stale\s+v6\s+no\s+-  refused v7/m);
  });
});
