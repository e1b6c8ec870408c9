/**
 * The scaling policy, pure: the state of one route in, decisions out. The edge calls it after
 * every change that matters (a client queued, a node came or went, a tick) and carries out what
 * it says. Tested with tables (test/unit/edge-policy.test.ts).
 *
 * Up: clients wait and no capacity is on its way (or the oldest has waited past a threshold
 * with nothing starting), or fewer instances than the minimum. Starts are rate-limited by a
 * token bucket (burst, then `startRatePerSec`) and capped at max instances, so a flood of
 * clients never makes a process storm. Down: a node started by the edge that has had no client
 * for `idleTimeoutMs` is stopped, oldest idle first, never below the minimum.
 */
export interface ScalePolicy {
  minInstances: number;
  maxInstances: number;
  /** 0: never scale down. */
  idleTimeoutMs: number;
  /** Start one more when the oldest client has waited this long and nothing is starting. */
  waitThresholdMs: number;
  startBurst: number;
  startRatePerSec: number;
}

export interface StartBucket {
  tokens: number;
  at: number;
}

export interface IdleNode {
  id: string;
  idleSince: number;
  /** Only nodes this edge started are stopped by it; others keep their own idle timeout. */
  managed: boolean;
}

export interface RouteScaleState {
  now: number;
  queued: number;
  oldestWaitMs: number;
  /** Slots of live nodes that are being re-established (they will take clients shortly). */
  reconnectingSlots: number;
  /** Instances started and not yet connected. */
  pendingStarts: number;
  /** Slots one new instance brings (learned from the nodes seen; 1 until then). */
  slotsPerInstance: number;
  /** Live nodes plus pending starts. */
  instances: number;
  idleNodes: readonly IdleNode[];
  bucket: StartBucket;
  /** No start before this time (after failed starts). */
  backoffUntil: number;
}

export interface ScaleDecision {
  start: number;
  stop: string[];
  reason: string;
  bucket: StartBucket;
}

/** A live node as capacity that is coming: on the warm path, being enabled or with free slots. */
export interface ComingNode {
  draining: boolean;
  active: number;
  concurrency: number;
  warm?: 'enabling' | 'on' | 'off';
}

/**
 * Capacity on its way while clients wait: instances not connected yet, plus warm nodes being
 * enabled or with slots about to be filled. Clients wait in the edge's queue or in HAProxy's
 * (`warmQueued`, handed over already): both wait for the same nodes, so either counts; counting
 * only the edge's queue started an extra instance for clients HAProxy was holding.
 */
export function capacityComing(edgeQueued: number, warmQueued: number, pending: number, nodes: readonly ComingNode[]): number {
  if (edgeQueued + warmQueued === 0) return pending;
  return pending + nodes.filter((n) => !n.draining && (n.warm === 'enabling' || (n.warm === 'on' && n.active < n.concurrency))).length;
}

export function refill(bucket: StartBucket, now: number, p: ScalePolicy): StartBucket {
  const tokens = Math.min(p.startBurst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * p.startRatePerSec);
  return { tokens, at: now };
}

export function decideScale(s: RouteScaleState, p: ScalePolicy): ScaleDecision {
  const bucket = refill(s.bucket, s.now, p);
  const slots = Math.max(1, s.slotsPerInstance);
  let want = 0;
  let reason = '';
  if (s.instances < p.minInstances) {
    want = p.minInstances - s.instances;
    reason = 'below min instances';
  }
  const deficit = s.queued - s.reconnectingSlots - s.pendingStarts * slots;
  if (deficit > 0 && Math.ceil(deficit / slots) > want) {
    want = Math.ceil(deficit / slots);
    reason = `${s.queued} waiting, no capacity coming`;
  } else if (want === 0 && s.queued > 0 && s.pendingStarts === 0 && s.oldestWaitMs >= p.waitThresholdMs) {
    want = 1;
    reason = `queue wait ${Math.round(s.oldestWaitMs)} ms over ${p.waitThresholdMs} ms`;
  }
  let start = 0;
  if (want > 0 && s.now >= s.backoffUntil) {
    start = Math.max(0, Math.min(want, p.maxInstances - s.instances, Math.floor(bucket.tokens)));
  }
  const stop: string[] = [];
  if (start === 0 && s.queued === 0 && p.idleTimeoutMs > 0) {
    let removable = s.instances - s.pendingStarts - p.minInstances;
    const idle = s.idleNodes.filter((n) => n.managed && s.now - n.idleSince >= p.idleTimeoutMs).sort((a, b) => a.idleSince - b.idleSince || (a.id < b.id ? -1 : 1));
    for (const n of idle) {
      if (removable <= 0) break;
      stop.push(n.id);
      removable--;
    }
  }
  return {
    start,
    stop,
    reason: start > 0 ? reason : stop.length ? `idle ${p.idleTimeoutMs} ms` : '',
    bucket: { tokens: bucket.tokens - start, at: bucket.at },
  };
}
