import { describe, expect, it } from 'vitest';
import { RateSeries, sparkline } from '../../src/engine/top/series.js';
import { TopStore } from '../../src/engine/top/store.js';
import { adaptSnapshot } from '../../src/engine/top/adapters.js';
import { containersSample } from '../../src/engine/top/docker.js';
import { topJson, parseInterval } from '../../src/engine/top.js';
import type { Snapshot } from '../../src/engine/runtime/status.js';
import type { Backend } from '../../src/engine/model/backend.js';
import { fixtureSnapshot, type FixtureKind } from '../fixtures/top/content.js';

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const sample = (kind: FixtureKind, t: number, backends = 3, extra: Record<string, unknown> = {}) =>
  adaptSnapshot({ ...fixtureSnapshot(kind, { backends, t }), ...extra } as Snapshot);

describe('RateSeries: rates from counter deltas', () => {
  it.each([
    // samples [value, ms], expected rate after each
    [[[0, 0], [100, 1000], [300, 2000]], [null, 100, 200]],
    [[[50, 0], [50, 500]], [null, 0]],
    [[[100, 0], [40, 1000], [140, 2000]], [null, null, 100]], // reset: no negative rate, restarts
    [[[0, 0], [10, 0]], [null, null]], // same time twice: no division by zero
    [[[0, 0], [1000, 250]], [null, 4000]],
  ] as const)('%j -> %j', (samples, rates) => {
    const s = new RateSeries();
    expect(samples.map(([v, t]) => s.add(v, t))).toEqual(rates);
  });

  it('keeps one bucket per second for the last N, NaN where nothing landed', () => {
    const s = new RateSeries({ bucketMs: 1000, buckets: 5 });
    s.record(1, 0);
    s.record(2, 1000);
    s.record(4, 3000);
    expect(s.history(5, 3000)).toEqual([NaN, 1, 2, NaN, 4]);
    s.record(9, 9000); // a gap longer than the ring clears it
    expect(s.history(5, 9000)).toEqual([NaN, NaN, NaN, NaN, 9]);
    expect(s.history(3, 11_000)).toEqual([9, NaN, NaN]);
  });

  it.each([
    [[0, 1, 2, 3, 4, 5, 6, 7], 8, '▁▂▃▄▅▆▇█', false],
    [[5, 5, 5, 5], 4, '████', false],
    [[0, 0, 0], 3, '▁▁▁', false],
    [[NaN, 0, NaN, 10], 4, ' ▁ █', false],
    [[0, 10, 0, 10], 2, '██', false], // two values per cell are averaged
    [[0, 10], 2, '_#', true],
  ] as Array<[number[], number, string, boolean]>)('sparkline %j width %i -> %s', (values, width, want, ascii) => {
    expect(sparkline(values, width, ascii)).toBe(want);
  });
});

describe('TopStore', () => {
  it('computes per-backend and per-service rates from two snapshots', () => {
    const store = new TopStore();
    for (const t of [0, 1]) for (const kind of ['map-image', 'render', 'edge'] as const) store.ingest(sample(kind, t), T0 + t * 1000);
    const st = store.state(T0 + 1000);
    const svc = Object.fromEntries(st.services.map((s) => [s.key, [s.rate, s.rateUnit, s.bytesRate, s.connections, s.queued]]));
    expect(svc).toEqual({
      'edge.main/api': [50, 'req/s', null, 7, 3],
      'map-image.tcp-18710/tcp-18710': [60, 'pkt/s', 6000, null, null], // 10 + 20 + 30
      'render.main/web': [6, 'req/s', null, 3, 2], // 1 + 2 + 3; sessions 0+1+2
    });
    const rows = st.backends.filter((b) => b.kind === 'map-image').map((b) => [b.endpoint, b.pktRate, b.bytesRate, b.health]);
    // health of kernel rows comes from the proxy that checks the same endpoint
    expect(rows).toEqual([
      ['198.18.1.1:80', 10, 1000, 'healthy'],
      ['198.18.1.2:80', 20, 2000, 'unhealthy'],
      ['198.18.1.3:80', 30, 3000, 'healthy'],
    ]);
    expect(store.history('map-image.tcp-18710/tcp-18710', 'packets', 3, T0 + 1000)).toEqual([NaN, NaN, 60]);
    expect(store.history('map-image.tcp-18710/tcp-18710/198.18.1.2:80', 'packets', 1, T0 + 1000)).toEqual([20]);
  });

  it('merges events from all sources once each, in time order', () => {
    const store = new TopStore();
    const ev = (time: string, message: string) => ({ time, type: 'added', message });
    store.ingest(sample('edge', 0, 1, { events: [ev('2025-01-01T00:00:02.000Z', 'b')] }), T0);
    store.ingest(sample('render', 0, 1, { events: [ev('2025-01-01T00:00:01.000Z', 'a')] }), T0);
    store.ingest(sample('edge', 1, 1, { events: [ev('2025-01-01T00:00:02.000Z', 'b'), ev('2025-01-01T00:00:03.000Z', 'c')] }), T0 + 1000);
    const msgs = store.state(T0 + 1000).timeline.filter((e) => e.type === 'added').map((e) => `${e.sourceId}:${e.message}`);
    expect(msgs).toEqual(['render.main:a', 'edge.main:b', 'edge.main:c']);
  });

  it('sources come, get lost, come back, and are forgotten when their socket goes', () => {
    const store = new TopStore();
    store.ingest(sample('edge', 0, 1), T0);
    store.lose('edge.main', 'closed its status stream', T0 + 1);
    let st = store.state(T0 + 2);
    expect(st.sources.map((s) => [s.id, s.status])).toEqual([['edge.main', 'lost']]);
    expect(st.services).toEqual([]); // a lost source's rows go (stale numbers mislead)
    store.ingest(sample('edge', 1, 1), T0 + 1000);
    store.lose('edge.main', 'stopped (socket removed)', T0 + 2000, true);
    st = store.state(T0 + 2000);
    expect(st.sources).toEqual([]);
    expect(st.timeline.filter((e) => e.type === 'source').map((e) => e.message)).toEqual(['edge main connected (pid 4242)', 'edge main closed its status stream', 'edge main back', 'edge main stopped (socket removed)']);
  });

  it('drops the history of backends that vanished (no growth under churn)', () => {
    const store = new TopStore();
    store.ingest(sample('map-image', 0, 3), T0);
    store.ingest(sample('map-image', 1, 1), T0 + 1000);
    expect(store.history('map-image.tcp-18710/tcp-18710/198.18.1.3:80', 'packets', 1, T0 + 1000)).toEqual([NaN]);
    expect(store.state(T0 + 1000).backends).toHaveLength(1);
  });

  it('flush() notifies subscribers only when something changed', () => {
    const store = new TopStore();
    let calls = 0;
    store.subscribe(() => calls++);
    store.flush();
    store.flush();
    store.ingest(sample('edge', 0, 1), T0);
    store.flush();
    store.flush();
    expect(calls).toBe(2);
  });

  it('the Docker fallback groups containers by service', () => {
    const b = (id: string, service: string, address: string): Backend => ({ id, name: id, service, source: 'docker', address, port: 80, state: 'running', health: 'none', labels: {}, since: '' });
    const s = containersSample([b('docker:1', 'web', '198.18.0.2'), b('docker:2', 'api', '198.18.0.3'), b('docker:3', 'web', '198.18.0.4')], T0);
    expect(s.services.map((x) => [x.service, x.backends.map((y) => y.key)])).toEqual([
      ['api', ['198.18.0.3:80']],
      ['web', ['198.18.0.2:80', '198.18.0.4:80']],
    ]);
  });

  it('topJson: the documented shape', () => {
    const store = new TopStore();
    for (const t of [0, 1]) store.ingest(sample('map-image', t, 1), T0 + t * 1000);
    const j = topJson(store.state(T0 + 1000), 1000);
    expect(Object.keys(j)).toEqual(['v', 'time', 'intervalMs', 'notice', 'sources', 'services', 'backends', 'events', 'fleet']);
    expect(j.backends[0]).toMatchObject({ service: 'tcp-18710', endpoint: '198.18.1.1:80', pktRate: 10, bytesRate: 1000, sourceId: 'map-image.tcp-18710' });
    expect(j.backends[0]).not.toHaveProperty('key');
  });

  it.each([
    ['1', 1000],
    ['0.25', 250],
    ['250ms', 250],
    ['2s', 2000],
  ])('--interval %s = %i ms', (text, ms) => expect(parseInterval(text)).toBe(ms));
  it.each(['0', '0.05', '61', 'fast', '-1', '1m'])('--interval %s is refused', (text) => expect(() => parseInterval(text)).toThrow(/invalid --interval/));
});
