import type { Socket } from 'node:net';
import type { NodeMeta } from './protocol.js';
import type { Link } from './link.js';
import type { ScalePolicy, StartBucket } from './policy.js';
import { BoundedQueue, type QueueLink } from './queue.js';
import { WaitReservoir } from './stats.js';

/** A client connection held by the edge, from accept until it is piped to a node. */
export interface Client extends QueueLink {
  readonly id: number;
  readonly sock: Socket;
  readonly remote: string;
  readonly http: boolean;
  readonly arrived: number;
  route: RouteState | null;
  /** Bytes read from the client and not yet known to have reached an app: sent again on re-queue. */
  chunks: Buffer[];
  bytes: number;
  timer: NodeJS.Timeout | null;
  attempts: number;
}

/** One authenticated pull connection of a node. */
export interface PullConn {
  readonly sock: Socket;
  /** The framed stream over `sock`, reused client after client. */
  readonly link: Link;
  readonly node: NodeRec;
  state: 'idle' | 'held' | 'busy';
  /** Position in the route's idle stack, -1 when not in it. */
  slot: number;
}

export interface NodeRec {
  readonly id: string;
  readonly meta: NodeMeta;
  readonly route: RouteState;
  readonly conns: Set<PullConn>;
  readonly joined: number;
  active: number;
  served: number;
  idleSince: number;
  draining: boolean;
  stopping: boolean;
  /** Instance id when this edge started the node. */
  instance?: string;
  /** On the warm path: its app is a server slot of the edge's HAProxy (see warm-routes.ts). */
  warm?: WarmSlot;
  goneTimer: NodeJS.Timeout | null;
}

/** A node on the warm path: `active` is then HAProxy's count of its app's sessions. */
export interface WarmSlot {
  readonly slot: number;
  /** The node's concurrency split over HAProxy's threads (threadShares), and their sessions now. */
  readonly shares: readonly number[];
  sessions: number[];
  state: 'enabling' | 'on' | 'off';
  /** Stopping: STOP is sent once HAProxy carries no session to the app any more. */
  stopWhenDrained: boolean;
  /** STOP may go out on the node's pull connections. */
  stopDue: boolean;
  stot: number;
}

/** Which path a route's clients take: HAProxy straight to a local app, the edge to pulling nodes, or held (no instance). */
export type RoutePath = 'warm' | 'pull' | 'cold';

export interface RouteView {
  path: RoutePath;
  /** Clients HAProxy queues for the route (warm path). */
  warmQueued: number;
  /** Held clients the edge handed to HAProxy (cold start, overflow). */
  forwarded: number;
  queued: number;
  active: number;
  capacity: number;
  idle: number;
  nodes: number;
  instances: number;
  pending: number;
  starts: number;
  startFailures: number;
  stops: number;
  served: number;
  timeouts: number;
  rejected: number;
  requeued: number;
  waitP50Ms: number;
  waitP99Ms: number;
  nodeList: Array<{ id: string; pid: number; app?: string; concurrency: number; active: number; idle: number; served: number; draining: boolean; stopping: boolean; managed: boolean; warm: boolean }>;
}

/** Everything the edge knows about one route: its queue, its idle pull connections, its nodes. */
export class RouteState {
  readonly queue: BoundedQueue<Client>;
  /** Idle pull connections, a stack: O(1) take, O(1) removal by swapping with the top. */
  private readonly idleStack: PullConn[] = [];
  readonly nodes = new Map<string, NodeRec>();
  /** Instances started for this route and not connected yet. */
  readonly pending = new Set<string>();
  readonly wait = new WaitReservoir(1024);
  active = 0;
  starts = 0;
  startFailures = 0;
  failuresInRow = 0;
  stops = 0;
  served = 0;
  timeouts = 0;
  rejected = 0;
  requeued = 0;
  /** Held clients handed to HAProxy's warm entry. */
  forwarded = 0;
  warmQueued = 0;
  slotsPerInstance = 1;
  bucket: StartBucket;
  backoffUntil = 0;

  constructor(
    readonly name: string,
    maxQueue: number,
    readonly policy: ScalePolicy,
    now: number,
  ) {
    this.queue = new BoundedQueue<Client>(maxQueue);
    this.bucket = { tokens: policy.startBurst, at: now };
  }

  get idle(): number {
    return this.idleStack.length;
  }

  pushIdle(c: PullConn): void {
    c.state = 'idle';
    c.slot = this.idleStack.length;
    this.idleStack.push(c);
  }

  popIdle(): PullConn | null {
    const c = this.idleStack.pop();
    if (!c) return null;
    c.slot = -1;
    return c;
  }

  removeIdle(c: PullConn): void {
    if (c.slot < 0) return;
    const last = this.idleStack.pop()!;
    if (last !== c) {
      this.idleStack[c.slot] = last;
      last.slot = c.slot;
    }
    c.slot = -1;
  }

  /** Nodes that count as instances: alive and not on their way out. */
  liveNodes(): NodeRec[] {
    return [...this.nodes.values()].filter((n) => !n.stopping && n.conns.size > 0);
  }

  path(): RoutePath {
    const live = this.liveNodes();
    if (live.some((n) => n.warm?.state === 'on')) return 'warm';
    return live.length ? 'pull' : 'cold';
  }

  view(instances: number): RouteView {
    const live = this.liveNodes();
    return {
      path: this.path(),
      warmQueued: this.warmQueued,
      forwarded: this.forwarded,
      queued: this.queue.size,
      active: this.active + live.reduce((s, n) => s + (n.warm ? n.active : 0), 0),
      capacity: live.reduce((s, n) => s + (n.draining ? 0 : n.meta.concurrency), 0),
      idle: this.idle,
      nodes: live.length,
      instances,
      pending: this.pending.size,
      starts: this.starts,
      startFailures: this.startFailures,
      stops: this.stops,
      served: this.served,
      timeouts: this.timeouts,
      rejected: this.rejected,
      requeued: this.requeued,
      waitP50Ms: this.wait.percentile(50),
      waitP99Ms: this.wait.percentile(99),
      nodeList: [...this.nodes.values()].map((n) => ({
        id: n.id,
        pid: n.meta.pid,
        app: n.meta.app,
        concurrency: n.meta.concurrency,
        active: n.active,
        idle: [...n.conns].filter((c) => c.state === 'idle').length,
        served: n.served,
        draining: n.draining,
        stopping: n.stopping,
        managed: n.instance !== undefined,
        warm: n.warm?.state === 'on',
      })),
    };
  }
}
