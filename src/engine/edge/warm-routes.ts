import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../runtime/logger.js';
import type { NodeRec, RouteState } from './route.js';
import type { WarmPath } from './warm.js';
import { threadShares } from './warm-config.js';

/**
 * Which nodes are on the warm path, and what HAProxy says about them. A node goes warm when it
 * and its app are on this host (its pull connection comes from a local address and its app
 * address is local) and its route has a free slot: from then on HAProxy connects clients
 * straight to the app, at most the node's concurrency at once (`maxconn`), and the node's pull
 * connections only carry STOP. Its `active` count is HAProxy's current sessions to the app, read
 * every tick (so idle scale-down sees WebSockets and streams), and a node being stopped gets
 * STOP only once that count is 0 after its slot was disabled.
 */
export class WarmRoutes {
  /** Route -> slot -> node (index 0 unused: HAProxy's server-template counts from 1). */
  private readonly slots = new Map<string, Array<NodeRec | null>>();
  private readonly local = localAddresses();
  /** Route -> clients HAProxy queues, per thread (never expected: see warm-config.ts). */
  private readonly queued = new Map<string, number[]>();

  constructor(
    readonly path: WarmPath,
    /** Route -> its warm entry port per thread. */
    readonly entries: ReadonlyMap<string, readonly number[]>,
    private readonly perRoute: number,
    private readonly log: Logger,
    /** The node's slot is on (pump the route's queue) or the node may be sent STOP now. */
    private readonly onChange: (node: NodeRec, what: 'on' | 'stop') => void,
  ) {}

  /** Put a new node on the warm path when it can be; false: it stays on the pull path. */
  join(node: NodeRec, remote: string | undefined): boolean {
    const app = splitHostPort(node.meta.app);
    if (!app || node.meta.selfIdle || !this.isLocal(remote) || !this.isLocal(app.host)) return false;
    let table = this.slots.get(node.route.name);
    if (!table) this.slots.set(node.route.name, (table = new Array<NodeRec | null>(this.perRoute + 1).fill(null)));
    const slot = table.findIndex((n, i) => i > 0 && n === null);
    if (slot < 0) return false;
    table[slot] = node;
    const shares = threadShares(node.meta.concurrency, slot, this.path.threads);
    node.warm = { slot, shares, sessions: shares.map(() => 0), state: 'enabling', stopWhenDrained: false, stopDue: false, stot: -1 }; // -1: not known yet (set when the slot goes ready)
    this.path.enable(node.route.name, slot, app.host, app.port, shares).then(
      (stot) => {
        if (node.warm?.state !== 'enabling') return;
        node.warm.state = 'on';
        node.warm.stot = stot;
        this.log.info('node on the warm path', { route: node.route.name, node: node.id, app: node.meta.app, slot });
        this.onChange(node, 'on');
      },
      (err: Error) => {
        this.log.warn('could not put a node on the warm path; it serves through the edge', { node: node.id, reason: err.message });
        this.release(node);
        node.warm = undefined;
        this.onChange(node, 'on');
      },
    );
    return true;
  }

  /** Take the node's slot out of rotation (drain or stop); the sessions it carries go on. */
  disable(node: NodeRec): Promise<void> {
    const w = node.warm;
    if (!w || w.state === 'off') return Promise.resolve();
    w.state = 'off';
    return this.path.disable(node.route.name, w.slot).catch((err: Error) => this.log.warn('could not disable a warm slot', { node: node.id, reason: err.message }));
  }

  /** Stop a warm node: out of rotation first, STOP (onChange 'stop') once HAProxy carries nothing to its app. */
  stop(node: NodeRec): void {
    const w = node.warm!;
    void this.disable(node).then(() => {
      // Only stats read after the slot is off can tell that nothing more will arrive.
      if (!w.stopDue) w.stopWhenDrained = true;
    });
  }

  /** Back into rotation after a drain. */
  enable(node: NodeRec): void {
    const w = node.warm;
    const app = splitHostPort(node.meta.app);
    if (!w || w.state !== 'off' || !app || node.stopping) return;
    w.state = 'enabling';
    void this.path.enable(node.route.name, w.slot, app.host, app.port, w.shares).then(() => {
      if (w.state === 'enabling') w.state = 'on';
      this.onChange(node, 'on');
    }, () => {});
  }

  /** The node is gone: its slot is disabled and free again. */
  leave(node: NodeRec): void {
    if (!node.warm) return;
    this.disable(node);
    this.release(node);
  }

  private release(node: NodeRec): void {
    const table = this.slots.get(node.route.name);
    if (table && node.warm && table[node.warm.slot] === node) table[node.warm.slot] = null;
  }

  /** Free slots HAProxy has for a route now in each thread's backend (per the last stats), minus what it already queues there. */
  free(r: RouteState): number[] {
    const q = this.queued.get(r.name);
    const free = Array.from({ length: this.path.threads }, (_, t) => -(q?.[t] ?? 0));
    for (const n of this.slots.get(r.name) ?? []) {
      const w = n?.warm;
      if (w?.state === 'on' && !n!.stopping && !n!.draining) w.shares.forEach((share, t) => (free[t]! += Math.max(0, share - w.sessions[t]!)));
    }
    return free;
  }

  on(r: RouteState): boolean {
    return (this.slots.get(r.name) ?? []).some((n) => n?.warm?.state === 'on');
  }

  /** Read HAProxy's queue and session counts into the routes and their warm nodes. */
  async refresh(routes: Iterable<RouteState>): Promise<void> {
    const stats = await this.path.stats();
    const now = Date.now();
    for (const r of routes) {
      const st = stats.get(r.name);
      this.queued.set(r.name, st?.qcur ?? []);
      r.warmQueued = (st?.qcur ?? []).reduce((a, b) => a + b, 0);
      for (const n of this.slots.get(r.name) ?? []) {
        const w = n?.warm;
        const s = w ? st?.slots.get(w.slot) : undefined;
        if (!n || !w || !s) continue;
        if (s.scur > 0 || s.stot !== w.stot) n.idleSince = now;
        if (w.stot >= 0 && s.stot > w.stot) {
          n.served += s.stot - w.stot;
          r.served += s.stot - w.stot;
        }
        w.stot = s.stot;
        w.sessions = s.threads;
        n.active = s.scur;
        if (w.stopWhenDrained && w.state === 'off' && s.scur === 0) {
          w.stopWhenDrained = false;
          w.stopDue = true;
          this.release(n);
          this.onChange(n, 'stop');
        }
      }
    }
  }

  private isLocal(address: string | undefined): boolean {
    if (!address) return false;
    const a = address.replace(/^::ffff:/, '').replace(/^\[|\]$/g, '');
    return a === '::1' || (isIP(a) === 4 && a.startsWith('127.')) || this.local.has(a);
  }
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(i.address);
  return out;
}

function splitHostPort(text: string | undefined): { host: string; port: number } | null {
  const m = text ? (/^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([0-9.]+):(\d{1,5})$/.exec(text)) : null;
  if (!m || isIP(m[1]!) === 0) return null;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: m[1]!, port } : null;
}
