import type { Socket } from 'node:net';
import type { Logger } from '../runtime/logger.js';
import { capacityComing, decideScale } from './policy.js';
import { encodeFrame, encodeJson, FrameReader, FrameType, newNonce, ProtocolError, welcomePayload, type NodeMeta } from './protocol.js';
import { authenticateNode } from './token.js';
import { drop } from './pipe.js';
import { Link } from './link.js';
import type { NodeRec, PullConn, RouteState } from './route.js';
import type { Instance, Instances } from './instances.js';
import { validateMeta } from './meta.js';
import type { EdgeConfig, EdgeCounters } from './server.js';
import type { WarmRoutes } from './warm-routes.js';

/**
 * The node side of the edge server: the state both sides share, the node handshake (challenge,
 * AUTH, WELCOME or REFUSED), node records and their pull connections, and scaling (starting
 * instances, stopping idle nodes). Pairing a ready pull connection with a client is the client
 * side's job (server-clients.ts), hence `offer` is abstract here.
 */
/**
 * Node connections still in their handshake (not authenticated yet) at once: more are closed on
 * accept, so unauthenticated peers cannot hold unbounded sockets and memory. Real nodes hold
 * this only for a round trip, and retry.
 */
export const MAX_PENDING_HANDSHAKES = 512;

export abstract class EdgeNodes {
  readonly routes = new Map<string, RouteState>();
  readonly counters: EdgeCounters = { nodeHandshakes: 0, authFailures: 0, handshakeTimeouts: 0, garbled: 0, nodesRefused: 0, headerTimeouts: 0, badRequests: 0, noRoute: 0 };
  protected instances: Instances | null = null;
  /** The warm path (HAProxy straight to local apps), when enabled. */
  protected warm: WarmRoutes | null = null;
  protected closing = false;
  protected readonly log: Logger;
  private pendingHandshakes = 0;
  private lastOverloadLog = 0;

  constructor(protected readonly cfg: EdgeConfig) {
    this.log = cfg.logger;
  }

  /** A pull connection is ready: serve the oldest waiting client, or keep it idle. */
  protected abstract offer(conn: PullConn): void;

  /** Hand a warm route's held clients to HAProxy as it has free slots. */
  protected abstract pumpWarm(r: RouteState, fresh?: boolean): Promise<void>;

  /** From WarmRoutes: a node's slot is on (or fell back to the pull path), or it may get STOP now. */
  protected warmChanged(node: NodeRec, what: 'on' | 'stop'): void {
    if (what === 'stop') {
      const stop = encodeJson(FrameType.stop, { reason: 'stopping' });
      for (const c of node.conns) if (c.state !== 'busy') c.sock.write(stop);
      return;
    }
    if (!node.warm) for (const c of node.conns) if (c.state === 'held') this.offer(c); // back on the pull path
    void this.pumpWarm(node.route, node.warm?.state === 'on');
  }

  protected async onNode(sock: Socket): Promise<void> {
    sock.on('error', () => {});
    if (this.closing) return drop(sock);
    if (this.pendingHandshakes >= MAX_PENDING_HANDSHAKES) {
      this.counters.nodesRefused++;
      if (Date.now() - this.lastOverloadLog > 10_000) {
        this.lastOverloadLog = Date.now(); // one line per 10 s, not one per connection
        this.log.warn(`node port: ${MAX_PENDING_HANDSHAKES} handshakes pending; closing new node connections until they finish or time out`);
      }
      return drop(sock);
    }
    this.counters.nodeHandshakes++;
    const reader = new FrameReader(sock);
    const edgeNonce = newNonce();
    sock.write(encodeFrame(FrameType.challenge, edgeNonce));
    let meta: NodeMeta;
    let nodeNonce: Buffer;
    let key: Buffer;
    this.pendingHandshakes++;
    try {
      const frame = await reader.next(this.cfg.handshakeTimeoutMs).finally(() => this.pendingHandshakes--);
      if (frame.type !== FrameType.auth) throw new ProtocolError(`expected AUTH, got frame type ${frame.type}`, 'unexpected');
      const ok = authenticateNode(this.cfg.token, edgeNonce, frame.payload);
      if (!ok) throw new ProtocolError('bad token', 'auth');
      const m = validateMeta(ok.meta);
      if (typeof m === 'string') throw new ProtocolError(m, 'garbled');
      meta = m;
      nodeNonce = ok.nodeNonce;
      key = ok.key;
    } catch (err) {
      const e = err instanceof ProtocolError ? err : new ProtocolError(String(err), 'garbled');
      reader.detach();
      if (e.reason === 'auth') this.counters.authFailures++;
      else if (e.reason === 'timeout') this.counters.handshakeTimeouts++;
      else if (e.reason !== 'closed') this.counters.garbled++;
      if (e.reason === 'auth' || e.reason === 'garbled' || e.reason === 'version') {
        this.log.warn('refused a node connection', { from: sock.remoteAddress, reason: e.message });
        this.cfg.onEvent?.('refused', `node from ${sock.remoteAddress}: ${e.message}`);
        if (!sock.destroyed) sock.end(encodeFrame(FrameType.refused, Buffer.from(e.reason)));
        setTimeout(() => drop(sock), 1000).unref();
      } else drop(sock);
      return;
    }
    const refuse = (reason: string) => {
      this.counters.nodesRefused++;
      reader.detach();
      sock.end(encodeFrame(FrameType.refused, Buffer.from(reason)));
      setTimeout(() => drop(sock), 1000).unref();
    };
    const r = this.routes.get(meta.route);
    if (!r) return refuse('route');
    const node = this.nodeFor(r, meta, sock.remoteAddress);
    if (node.stopping) return refuse('stopping');
    // Never more pull connections than the node's concurrency: a slot is a slot.
    if (node.conns.size >= node.meta.concurrency) return refuse('busy');
    sock.write(encodeFrame(FrameType.welcome, welcomePayload(key, nodeNonce, edgeNonce)));
    const rest = reader.detach();
    const conn: PullConn = { sock, link: new Link(sock), node, state: 'held', slot: -1 };
    node.conns.add(conn);
    sock.once('close', () => this.connClosed(conn));
    if (rest.length) {
      this.counters.garbled++;
      return drop(sock);
    }
    this.offer(conn);
  }

  private nodeFor(r: RouteState, meta: NodeMeta, remote: string | undefined): NodeRec {
    let node = r.nodes.get(meta.node);
    if (node) {
      if (node.goneTimer) clearTimeout(node.goneTimer);
      node.goneTimer = null;
      if (node.warm && !node.draining) this.warm?.enable(node); // back after a lost connection
      return node;
    }
    node = { id: meta.node, meta, route: r, conns: new Set(), joined: Date.now(), active: 0, served: 0, idleSince: Date.now(), draining: false, stopping: false, goneTimer: null };
    const inst = meta.instance ? this.instances?.get(meta.instance) : undefined;
    if (inst && inst.route === r.name) {
      node.instance = inst.id;
      inst.connected = true;
      r.pending.delete(inst.id);
      r.failuresInRow = 0;
    }
    r.slotsPerInstance = meta.concurrency;
    r.nodes.set(node.id, node);
    if (!this.closing) this.warm?.join(node, remote);
    this.log.info('node joined', { route: r.name, node: node.id, pid: meta.pid, concurrency: meta.concurrency, app: meta.app, path: node.warm ? 'warm' : 'pull' });
    this.cfg.onEvent?.('added', `node ${node.id} pid ${meta.pid} (${meta.concurrency} slots)`, r.name);
    return node;
  }

  private connClosed(conn: PullConn): void {
    const node = conn.node;
    const r = node.route;
    if (conn.state === 'idle') r.removeIdle(conn);
    if (conn.state === 'busy') {
      node.active--;
      r.active--;
      if (node.active === 0) node.idleSince = Date.now();
    }
    conn.state = 'held';
    node.conns.delete(conn);
    // A warm node's pull connections carry no client, so none closes between clients: with all
    // gone the node (and likely its app) is: HAProxy must not send it one more client meanwhile.
    if (node.warm && node.conns.size === 0 && !node.stopping) void this.warm?.disable(node);
    if (node.conns.size === 0 && !node.goneTimer) {
      // A node re-opens a slot right after each client: only a node that stays away is gone.
      node.goneTimer = setTimeout(() => this.removeNode(node, 'disconnected'), node.stopping ? 0 : 1500);
      node.goneTimer.unref();
    }
    if (r.queue.size > 0) this.evaluate(r); // otherwise the tick looks at it: keep this path cheap
  }

  private removeNode(node: NodeRec, why: string): void {
    const r = node.route;
    if (node.goneTimer) clearTimeout(node.goneTimer);
    node.goneTimer = null;
    if (r.nodes.get(node.id) !== node) return;
    for (const c of node.conns) drop(c.sock);
    this.warm?.leave(node);
    r.nodes.delete(node.id);
    this.log.info('node left', { route: r.name, node: node.id, reason: why });
    this.cfg.onEvent?.('removed', `node ${node.id} ${why}`, r.name);
    this.evaluate(r);
  }

  // --- scaling --------------------------------------------------------------------------

  protected instanceCount(r: RouteState): number {
    return r.liveNodes().length + r.pending.size;
  }

  protected evaluate(r: RouteState): void {
    if (this.closing) return;
    const now = Date.now();
    const live = r.liveNodes();
    let reconnecting = 0;
    for (const n of live) if (!n.draining) reconnecting += Math.max(0, n.meta.concurrency - n.conns.size);
    const head = r.queue.peek();
    const d = decideScale(
      {
        now,
        queued: r.queue.size + r.warmQueued,
        oldestWaitMs: head ? now - head.arrived : 0,
        reconnectingSlots: reconnecting,
        pendingStarts: capacityComing(r.queue.size, r.warmQueued, r.pending.size, live.map((n) => ({ draining: n.draining, active: n.active, concurrency: n.meta.concurrency, warm: n.warm?.state }))),
        slotsPerInstance: r.slotsPerInstance,
        instances: live.length + r.pending.size,
        idleNodes: live.filter((n) => n.active === 0 && !n.draining).map((n) => ({ id: n.id, idleSince: n.idleSince, managed: n.instance !== undefined })),
        bucket: r.bucket,
        backoffUntil: r.backoffUntil,
      },
      r.policy,
    );
    r.bucket = d.bucket;
    if (d.start > 0 && this.instances) {
      for (let i = 0; i < d.start; i++) this.startInstance(r, d.reason);
    }
    for (const id of d.stop) this.stopNode(r.nodes.get(id)!, d.reason);
  }

  private startInstance(r: RouteState, reason: string): void {
    const inst = this.instances!.start(r.name);
    if (!inst) {
      r.startFailures++;
      return;
    }
    r.starts++;
    r.pending.add(inst.id);
    this.cfg.onEvent?.('scale', `start instance ${inst.id} pid ${inst.pid}: ${reason}`, r.name);
    setTimeout(() => {
      if (!inst.connected && this.instances?.get(inst.id)) {
        this.log.warn('instance did not connect in time; stopping it', { route: r.name, instance: inst.id, pid: inst.pid });
        void this.instances.stop(inst.id, this.cfg.stopGraceMs);
      }
    }, this.cfg.startTimeoutMs).unref();
  }

  protected onInstanceExit(inst: Instance, code: number | null, sig: string | null): void {
    const r = this.routes.get(inst.route);
    if (!r) return;
    r.pending.delete(inst.id);
    if (!inst.connected) {
      r.startFailures++;
      r.failuresInRow++;
      r.backoffUntil = Date.now() + Math.min(30_000, 250 * 2 ** Math.min(7, r.failuresInRow));
      this.log.warn('instance exited before connecting', { route: r.name, instance: inst.id, code, signal: sig });
      this.cfg.onEvent?.('error', `instance ${inst.id} exited before connecting (code ${code ?? sig})`, r.name);
    } else {
      this.log.info('instance exited', { route: r.name, instance: inst.id, code, signal: sig });
    }
    for (const n of r.nodes.values()) if (n.instance === inst.id) this.removeNode(n, `instance exited (${code ?? sig})`);
    this.evaluate(r);
  }

  /**
   * The edge is stopping: a node it started gets STOP (now on its free pull connections, on the
   * others once their client is done); a node it did not start loses its free pull connections
   * (the busy ones close after their client, see offer).
   */
  protected retire(node: NodeRec): void {
    if (node.instance !== undefined) return this.stopNode(node, 'edge stopping');
    for (const c of node.conns) {
      if (c.state === 'idle') node.route.removeIdle(c);
      if (c.state !== 'busy') drop(c.sock);
    }
  }

  protected stopNode(node: NodeRec, why: string): void {
    if (node.stopping) return;
    node.stopping = true;
    node.route.stops++;
    this.log.info('stopping node', { route: node.route.name, node: node.id, reason: why });
    this.cfg.onEvent?.('scale', `stop node ${node.id}: ${why}`, node.route.name);
    if (node.warm && this.warm) return this.warm.stop(node); // STOP once HAProxy carries nothing to it
    const stop = encodeJson(FrameType.stop, { reason: why });
    for (const c of node.conns) {
      if (c.state === 'idle') node.route.removeIdle(c);
      if (c.state !== 'busy') {
        c.state = 'held';
        c.sock.write(stop);
      }
    }
  }
}
