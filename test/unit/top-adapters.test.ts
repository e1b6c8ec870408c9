import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { adaptSnapshot, normalizeHealth, sampleBackend } from '../../src/engine/top/adapters.js';
import type { Snapshot } from '../../src/engine/runtime/status.js';
import { fixtureSnapshot } from '../fixtures/top/content.js';

const snap = (kind: Parameters<typeof fixtureSnapshot>[0], backends = 2, t = 1) => fixtureSnapshot(kind, { backends, t }) as Snapshot;

describe('top adapters: one per kind, Snapshot -> SourceSample', () => {
  it.each([
    // kind, service, role, backends, first backend key, its counters, sessions, queued, service numbers
    ['map-image', 'tcp-18710', 'mapping', 2, '198.18.1.1:80', { packets: 10, bytes: 1000 }, undefined, undefined, {}],
    ['render', 'web', 'frontend', 2, '198.18.1.1:80', { hits: 1 }, 0, 2, {}],
    ['edge', 'api', 'route', 1, '127.0.0.1:18712', { hits: 50 }, 7, undefined, { queued: 3, active: 7, capacity: 16, nodes: 1, waitP50Ms: 12, waitP99Ms: 250 }],
    ['deploy', 'shop', 'deploy', 2, '198.18.0.21:80', {}, undefined, undefined, { replicas: 2, desired: 2 }],
    ['discover', 'web', 'service', 2, '198.18.1.1:80', {}, undefined, undefined, {}],
  ] as const)('%s', (kind, service, role, count, key, counters, sessions, queued, numbers) => {
    const s = adaptSnapshot(snap(kind));
    expect(s.kind).toBe(kind);
    expect(s.pid).toBe(4242);
    expect(s.time).toBe(Date.parse('2025-01-01T00:00:01.000Z'));
    expect(s.services.map((x) => x.service)).toEqual([service]);
    const svc = s.services[0]!;
    expect(svc.role).toBe(role);
    expect(svc.backends).toHaveLength(count);
    expect(svc.backends[0]!.key).toBe(key);
    expect(svc.backends[0]!.counters).toEqual(counters);
    expect(svc.backends[0]!.sessions).toBe(sessions);
    expect(svc.backends[0]!.queued).toBe(queued);
    expect(svc).toMatchObject(numbers);
    expect(s.events).toEqual([{ time: '2025-01-01T00:00:00.000Z', type: 'added', message: `${kind} started`, service: kind === 'edge' ? 'api' : 'web' }]);
  });

  it('map-image: drill-down facts and draining', () => {
    const raw = fixtureSnapshot('map-image', { backends: 2, t: 1, draining: new Set(['198.18.1.2:80']) }) as Snapshot;
    const svc = adaptSnapshot(raw).services[0]!;
    expect(svc.detail).toEqual({ image: 'elastic-test/web:1', port: '18710/tcp', 'to port': '80', dataplane: 'nft', syncs: '3', 'last sync ms': '1.5' });
    expect(svc.backends.map((b) => b.state)).toEqual(['running', 'draining']);
    expect(svc.backends[0]!.health).toBe('-'); // the kernel does not know health
  });

  it('node: the process is one backend (its app), capacity is its concurrency', () => {
    const s = adaptSnapshot(snap('node')).services[0]!;
    expect([s.service, s.role, s.capacity, s.active, s.counters.hits]).toEqual(['api', 'route', 16, 7, 50]);
    expect(s.backends.map((b) => [b.key, b.health, b.state, b.sessions, b.counters.hits])).toEqual([['127.0.0.1:18712', 'healthy', 'running', 7, 50]]);
    expect(s.detail).toMatchObject({ state: 'serving', edge: '127.0.0.1:18713' });
  });

  it('deploy: replicas and the last autoscaler decision', () => {
    const s = adaptSnapshot(snap('deploy')).services[0]!;
    expect([s.replicas, s.desired, s.backends.map((b) => [b.key, b.health])]).toEqual([2, 2, [['198.18.0.21:80', 'healthy'], ['198.18.0.22:80', 'starting']]]);
    expect(s.detail).toEqual({
      image: 'elastic-test/web:1',
      revision: '0123456789ab-cafebabe',
      phase: 'steady',
      ready: '1',
      autoscale: '1..4 on edge-queue target 10',
      'last decision': '2->2 stable: at target: needs 1.6 replicas',
    });
  });

  it('render: facts for the drill-down, errors by their message', () => {
    expect(adaptSnapshot(snap('render')).services[0]!.detail).toEqual({ proxy: 'haproxy', bind: '127.0.0.1:18711', slots: '4', reloads: '1', 'runtime ops': '4', refusals: '0', 'last error': 'HAProxy refused "set server": no such server' });
  });

  it('render: HAProxy status words become health and state', () => {
    const raw = fixtureSnapshot('render', { backends: 3, t: 5, draining: new Set(['198.18.1.3:80']) }) as Snapshot;
    const b = adaptSnapshot(raw).services[0]!.backends;
    expect(b.map((x) => [x.health, x.state])).toEqual([
      ['healthy', 'running'],
      ['unhealthy', 'running'],
      ['healthy', 'draining'], // render lists drained backend ids; HAProxy still says UP
    ]);
  });

  it.each([
    ['UP', 'healthy'],
    ['UP 1/3', 'healthy'],
    ['DOWN', 'unhealthy'],
    ['no check', 'none'],
    ['MAINT', '-'],
    ['starting', 'starting'],
    ['', '-'],
    [undefined, '-'],
    [42, '-'],
  ])('health %j -> %s', (raw, want) => expect(normalizeHealth(raw)).toBe(want));

  it.each([
    [{ addr: '198.18.0.9:8080', server: 's1' }, '198.18.0.9:8080', 8080],
    [{ address: '::1', port: 80 }, '[::1]:80', 80],
    [{ addr: '[::1]:81' }, '[::1]:81', 81],
    [{ id: 'node/a' }, 'node_a', null],
  ])('backend address forms %j', (item, key, port) => {
    const b = sampleBackend(item, 'x')!;
    expect(b.key).toBe(key);
    expect(b.port).toBe(port);
  });

  it('unknown kinds are shown generically; junk is skipped, not fatal', () => {
    const s = adaptSnapshot({
      v: 1,
      kind: 'future-thing',
      name: 'x',
      pid: 1,
      started: '',
      time: 'not a time',
      config: {},
      services: { a: { backends: [{ address: '198.18.0.5', port: 9 }, 'junk', null, { nothing: 1 }], widgets: 5, label: 'hello' }, b: 'not an object' },
      events: [{ time: 't', type: 'x', message: 'm' }, 'bad', { type: 'no time' }],
    } as unknown as Snapshot, 1234);
    expect(s.time).toBe(1234);
    expect(s.services.map((x) => [x.service, x.role, x.backends.length])).toEqual([
      ['a', 'service', 1],
      ['b', 'service', 0],
    ]);
    expect(s.services[0]!.detail).toEqual({ widgets: '5', label: 'hello' });
    expect(s.events).toHaveLength(1);
  });

  it('any JSON content: never throws, every shown string is printable', () => {
    fc.assert(
      fc.property(fc.string(), fc.dictionary(fc.string(), fc.jsonValue()), fc.array(fc.jsonValue(), { maxLength: 5 }), (name, services, events) => {
        const s = adaptSnapshot({ v: 1, kind: 'render', name, pid: 1, started: '', time: '', config: {}, services, events } as unknown as Snapshot);
        const strings = [s.name, ...s.services.flatMap((x) => [x.service, ...Object.entries(x.detail).flat(), ...x.backends.flatMap((b) => [b.key, b.name, b.health, b.state, b.source])])];
        // eslint-disable-next-line no-control-regex
        for (const t of strings) expect(t).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
        for (const x of s.services) expect(x.service).not.toContain('/');
      }),
      { numRuns: 300 },
    );
  });
});
