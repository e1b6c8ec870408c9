import { describe, expect, it } from 'vitest';
import { capacityComing, decideScale, refill, type RouteScaleState, type ScalePolicy } from '../../src/engine/edge/policy.js';

const policy: ScalePolicy = { minInstances: 0, maxInstances: 8, idleTimeoutMs: 10_000, waitThresholdMs: 1000, startBurst: 4, startRatePerSec: 1 };
const base: RouteScaleState = {
  now: 100_000,
  queued: 0,
  oldestWaitMs: 0,
  reconnectingSlots: 0,
  pendingStarts: 0,
  slotsPerInstance: 1,
  instances: 0,
  idleNodes: [],
  bucket: { tokens: 4, at: 100_000 },
  backoffUntil: 0,
};

describe('scaling policy', () => {
  it.each<[string, Partial<RouteScaleState>, Partial<ScalePolicy>, number, string[]]>([
    ['nothing waiting, nothing to do', {}, {}, 0, []],
    ['4 waiting, no capacity: start 4 (brxy demo)', { queued: 4 }, {}, 4, []],
    ['4 waiting, 4 starting: nothing more', { queued: 4, pendingStarts: 4, instances: 4 }, {}, 0, []],
    ['4 waiting, 2 starting: 2 more', { queued: 4, pendingStarts: 2, instances: 2 }, {}, 2, []],
    ['slots reconnecting count as capacity coming', { queued: 2, reconnectingSlots: 2, instances: 1 }, {}, 0, []],
    ['instances with 8 slots: 20 waiting need 3', { queued: 20, slotsPerInstance: 8 }, {}, 3, []],
    ['capped at max instances', { queued: 10, instances: 6 }, {}, 2, []],
    ['at max instances: none', { queued: 10, instances: 8 }, {}, 0, []],
    ['rate-limited: 1.5 tokens start 1', { queued: 10, bucket: { tokens: 1.5, at: 100_000 } }, {}, 1, []],
    ['rate-limited: empty bucket refills with time', { queued: 10, bucket: { tokens: 0, at: 98_000 } }, {}, 2, []],
    ['backoff after failed starts', { queued: 3, backoffUntil: 100_500 }, {}, 0, []],
    ['below min instances', { instances: 1 }, { minInstances: 3 }, 2, []],
    ['waiting past the threshold with nothing starting: one more', { queued: 1, oldestWaitMs: 1500, reconnectingSlots: 1, instances: 1 }, {}, 1, []],
    ['waiting under the threshold: capacity is coming', { queued: 1, oldestWaitMs: 500, reconnectingSlots: 1, instances: 1 }, {}, 0, []],
    [
      'idle past the timeout: stop, oldest idle first',
      { instances: 2, idleNodes: [{ id: 'b', idleSince: 85_000, managed: true }, { id: 'a', idleSince: 80_000, managed: true }] },
      {},
      0,
      ['a', 'b'],
    ],
    ['never below min instances', { instances: 2, idleNodes: [{ id: 'a', idleSince: 0, managed: true }, { id: 'b', idleSince: 0, managed: true }] }, { minInstances: 1 }, 0, ['a']],
    ['not idle long enough', { instances: 1, idleNodes: [{ id: 'a', idleSince: 95_000, managed: true }] }, {}, 0, []],
    ['nodes the edge did not start are left alone', { instances: 1, idleNodes: [{ id: 'a', idleSince: 0, managed: false }] }, {}, 0, []],
    ['idle timeout 0: never stop', { instances: 1, idleNodes: [{ id: 'a', idleSince: 0, managed: true }] }, { idleTimeoutMs: 0 }, 0, []],
    ['no stop while clients wait', { queued: 1, instances: 1, reconnectingSlots: 1, idleNodes: [{ id: 'a', idleSince: 0, managed: true }] }, {}, 0, []],
  ])('%s', (_name, state, pol, start, stop) => {
    const d = decideScale({ ...base, ...state }, { ...policy, ...pol });
    expect(d.start).toBe(start);
    expect(d.stop).toEqual(stop);
    if (start) expect(d.reason).not.toBe('');
  });

  it('a flood of clients never makes a process storm: starts follow the bucket', () => {
    let bucket = { tokens: 4, at: 0 };
    let instances = 0;
    const starts: number[] = [];
    for (let t = 0; t <= 10_000; t += 250) {
      const d = decideScale({ ...base, now: t, queued: 1000, instances, bucket }, { ...policy, maxInstances: 100 });
      bucket = d.bucket;
      instances += d.start; // they never connect: worst case
      starts.push(d.start);
    }
    expect(instances).toBeLessThanOrEqual(4 + 10 + 1); // burst + 1/s over 10 s
    expect(starts[0]).toBe(4);
  });

  it('refill is capped at the burst', () => {
    expect(refill({ tokens: 0, at: 0 }, 1_000_000, policy).tokens).toBe(4);
  });
});

describe('capacity on its way while clients wait', () => {
  const enabling = { draining: false, active: 0, concurrency: 1, warm: 'enabling' as const };
  const onFree = { draining: false, active: 0, concurrency: 1, warm: 'on' as const };
  const onFull = { draining: false, active: 1, concurrency: 1, warm: 'on' as const };
  it.each<[string, number, number, number, Parameters<typeof capacityComing>[3], number]>([
    ['nobody waits: only pending starts', 0, 0, 2, [enabling, onFree], 2],
    ['clients in the edge queue: enabling and free warm nodes count', 3, 0, 1, [enabling, onFree, onFull], 3],
    // The CI case: every client already handed to HAProxy and queued there while nodes are enabled.
    ['clients queued in HAProxy only: the enabling nodes still count', 0, 3, 1, [enabling, enabling], 3],
    ['a draining node is not capacity', 1, 0, 0, [{ ...enabling, draining: true }], 0],
    ['a Node-path node (no warm slot) is not counted here', 1, 0, 0, [{ draining: false, active: 0, concurrency: 1 }], 0],
  ])('%s', (_name, edgeQueued, warmQueued, pending, nodes, want) => {
    expect(capacityComing(edgeQueued, warmQueued, pending, nodes)).toBe(want);
  });
});
