import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../runtime/logger.js';
import { printable } from '../model/validate.js';
import { decideScale, type ScalePolicy } from './policy.js';
import { encodeFrame, encodeJson, FrameReader, FrameType, newNonce, ProtocolError, verifyAuth, welcomePayload, type Frame, type NodeMeta } from './protocol.js';
import { drop } from './pipe.js';
import { dataFrame, Link, MAX_DATA, relay } from './link.js';
import { RouteState, type Client, type NodeRec, type PullConn, type RouteView } from './route.js';
import { matchHost, sniffHttp, sniffTls, type Sniff } from './sniff.js';
import { Instances, type Instance } from './instances.js';
import { validateMeta } from './meta.js';

/**
 * The edge: holds client connections and hands each to an idle pull connection of a node of its
 * route (O(1): a stack per route), or queues it (bounded, with a timeout), and starts instances
 * when clients wait and no capacity is coming. After the handoff the pull connection is a plain
 * byte pipe (see protocol.ts). A pull connection that dies before READY gives its client back to
 * the front of the queue with every byte it had sent.
 */
export interface EdgeListener {
  kind: 'tcp' | 'http' | 'tls';
  port: number;
  /** tcp: the route of every connection on this port. */
  route?: string;
}

export interface EdgeConfig {
  address: string;
  listeners: EdgeListener[];
  /** Host (exact or `*.parent`) -> route, for http and tls listeners. */
  hosts: ReadonlyMap<string, string>;
  defaultRoute?: string;
  nodeAddress: string;
  nodePort: number;
  token: Buffer;
  /** The token text passed to started instances. */
  tokenText: string;
  maxQueue: number;
  queueTimeoutMs: number;
  retryAfterS: number;
  headerTimeoutMs: number;
  headerMaxBytes: number;
  handshakeTimeoutMs: number;
  readyTimeoutMs: number;
  policy: ScalePolicy;
  startCommand?: readonly string[];
  startTimeoutMs: number;
  stopGraceMs: number;
  logger: Logger;
  onEvent?: (type: string, message: string, route?: string) => void;
}

export interface EdgeCounters {
  nodeHandshakes: number;
  authFailures: number;
  handshakeTimeouts: number;
  garbled: number;
  nodesRefused: number;
  headerTimeouts: number;
  badRequests: number;
  noRoute: number;
}

const MAX_ATTEMPTS = 5;

export class EdgeServer {
  readonly routes = new Map<string, RouteState>();
  readonly counters: EdgeCounters = { nodeHandshakes: 0, authFailures: 0, handshakeTimeouts: 0, garbled: 0, nodesRefused: 0, headerTimeouts: 0, badRequests: 0, noRoute: 0 };
  private readonly servers: Server[] = [];
  private nodeServer: Server | null = null;
  private instances: Instances | null = null;
  private nextId = 1;
  private ticker: NodeJS.Timeout | null = null;
  private closing = false;
  readonly clientPorts: number[] = [];
  nodePort = 0;
  private readonly log: Logger;

  constructor(private readonly cfg: EdgeConfig) {
    this.log = cfg.logger;
    const names = new Set<string>();
    for (const l of cfg.listeners) if (l.kind === 'tcp') names.add(l.route ?? 'default');
    for (const r of cfg.hosts.values()) names.add(r);
    if (cfg.defaultRoute) names.add(cfg.defaultRoute);
    for (const n of names) this.routes.set(n, new RouteState(n, cfg.maxQueue, cfg.policy, Date.now()));
  }

  async start(): Promise<void> {
    this.nodeServer = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 10_000 }, (s) => this.onNode(s));
    this.nodePort = await listen(this.nodeServer, this.cfg.nodeAddress, this.cfg.nodePort);
    if (this.cfg.startCommand?.length) {
      const host = this.cfg.nodeAddress === '0.0.0.0' || this.cfg.nodeAddress === '::' ? '127.0.0.1' : this.cfg.nodeAddress;
      this.instances = new Instances(this.cfg.startCommand, { edge: `${host.includes(':') ? `[${host}]` : host}:${this.nodePort}`, token: this.cfg.tokenText }, this.log, (i, code, sig) =>
        this.onInstanceExit(i, code, sig),
      );
    }
    for (const l of this.cfg.listeners) {
      const server = createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: l.kind === 'tcp' }, (s) => this.onClient(s, l));
      this.servers.push(server);
      this.clientPorts.push(await listen(server, this.cfg.address, l.port));
    }
    this.ticker = setInterval(() => {
      for (const r of this.routes.values()) this.evaluate(r);
    }, 250);
    this.ticker.unref();
    for (const r of this.routes.values()) this.evaluate(r);
  }

  /** Stop listening, answer the queued clients, stop the instances this edge started. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.ticker) clearInterval(this.ticker);
    for (const s of [...this.servers, this.nodeServer]) s?.close();
    for (const r of this.routes.values()) for (let c = r.queue.shift(); c; c = r.queue.shift()) this.refuse(c, 'edge stopping');
    await this.instances?.stopAll(this.cfg.stopGraceMs);
    for (const r of this.routes.values()) for (const n of r.nodes.values()) for (const c of n.conns) if (c.state !== 'busy') drop(c.sock);
  }

  view(): Record<string, RouteView> {
    const out: Record<string, RouteView> = {};
    for (const [name, r] of this.routes) out[name] = r.view(this.instanceCount(r));
    return out;
  }

  // --- clients --------------------------------------------------------------------------

  private onClient(sock: Socket, l: EdgeListener): void {
    sock.on('error', () => {});
    const c: Client = {
      id: this.nextId++,
      sock,
      remote: `${sock.remoteAddress}:${sock.remotePort}`,
      http: l.kind === 'http',
      arrived: Date.now(),
      route: null,
      chunks: [],
      bytes: 0,
      timer: null,
      attempts: 0,
      prev: null,
      next: null,
      queued: false,
    };
    if (this.closing) return this.refuse(c, 'edge stopping');
    if (l.kind === 'tcp') {
      c.route = this.routes.get(l.route ?? 'default')!;
      this.dispatch(c);
    } else {
      this.sniff(c, l.kind === 'http' ? sniffHttp : sniffTls);
    }
  }

  /** Read the request head (or ClientHello) within the size limit and the read timeout. */
  private sniff(c: Client, parse: (b: Buffer, max: number) => Sniff): void {
    const sock = c.sock;
    let buf: Buffer = Buffer.alloc(0);
    const cleanup = () => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', cleanup);
    };
    const timer = setTimeout(() => {
      cleanup();
      this.counters.headerTimeouts++;
      this.answer(c, 408, 'Request Timeout', 'request head not received in time');
    }, this.cfg.headerTimeoutMs);
    const onEnd = () => {
      cleanup();
      drop(sock);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const r = parse(buf, this.cfg.headerMaxBytes);
      if (r.state === 'incomplete') return;
      cleanup();
      sock.pause();
      if (r.state === 'bad') {
        this.counters.badRequests++;
        return this.answer(c, r.status, r.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request', r.reason);
      }
      const name = matchHost(r.host, this.cfg.hosts, this.cfg.defaultRoute);
      if (name === undefined) {
        this.counters.noRoute++;
        return this.answer(c, 404, 'Not Found', `no route for host ${printable(r.host ?? '(none)', 100)}`);
      }
      c.route = this.routes.get(name)!;
      c.chunks.push(buf);
      c.bytes = buf.length;
      this.dispatch(c);
    };
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.once('close', cleanup);
  }

  private dispatch(c: Client): void {
    const r = c.route!;
    const conn = r.popIdle();
    if (conn) return this.handoff(c, conn);
    if (!r.queue.push(c)) {
      r.rejected++;
      return this.refuse(c, 'queue full');
    }
    this.watchQueued(c, this.cfg.queueTimeoutMs);
    this.evaluate(r);
  }

  /** While queued: a timeout, and notice a client that gives up. TCP bytes are read (bounded). */
  private watchQueued(c: Client, timeoutMs: number): void {
    const r = c.route!;
    c.timer = setTimeout(() => {
      c.timer = null;
      r.queue.remove(c);
      r.timeouts++;
      this.refuse(c, 'queue timeout');
    }, timeoutMs);
    const gone = () => {
      if (!c.queued) return;
      r.queue.remove(c);
      if (c.timer) clearTimeout(c.timer);
      drop(c.sock);
    };
    c.sock.once('close', gone);
    if (c.http) {
      c.sock.once('end', gone); // HTTP: a FIN while waiting is a client that gave up
      c.sock.resume();
    }
    c.sock.on('data', (chunk: Buffer) => {
      if (!c.queued) return;
      c.chunks.push(chunk);
      c.bytes += chunk.length;
      if (c.bytes >= this.cfg.headerMaxBytes) c.sock.pause(); // queue memory stays bounded
    });
    if (!c.http && c.bytes < this.cfg.headerMaxBytes) c.sock.resume();
  }

  private unwatch(c: Client): void {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.sock.removeAllListeners('data');
    c.sock.removeAllListeners('end');
    c.sock.removeAllListeners('close');
    c.sock.pause();
  }

  /**
   * Hand a client to a pull connection: CLIENT plus the bytes so far as DATA; relay after READY.
   * Until READY the client's bytes are kept: a link that fails by then re-queues the client.
   */
  private handoff(c: Client, conn: PullConn): void {
    const r = c.route!;
    const node = conn.node;
    const link = conn.link;
    this.unwatch(c);
    conn.state = 'busy';
    node.active++;
    r.active++;
    // CLIENT and the bytes read so far in one write.
    const head = encodeJson(FrameType.client, { id: c.id, remote: c.remote, route: r.name });
    if (c.bytes > 0 && c.bytes <= MAX_DATA) link.sock.write(Buffer.concat([head, dataFrame(c.chunks.length === 1 ? c.chunks[0]! : Buffer.concat(c.chunks))]));
    else {
      link.sock.write(head);
      for (const chunk of c.chunks) link.sendData(chunk);
    }
    const sock = c.sock;
    const onData = (chunk: Buffer) => {
      c.chunks.push(chunk);
      c.bytes += chunk.length;
      link.sendData(chunk);
      if (c.bytes >= this.cfg.headerMaxBytes * 4) sock.pause();
    };
    const onClose = () => drop(link.sock);
    const settle = () => {
      clearTimeout(timer);
      link.release();
      link.sock.off('close', onLinkClose);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.pause();
    };
    const fail = (err: ProtocolError) => {
      settle();
      drop(link.sock);
      if (sock.destroyed) return;
      if (err.reason !== 'closed' && err.reason !== 'timeout') this.counters.garbled++;
      r.requeued++;
      this.log.debug('handoff failed before any byte reached the app; client re-queued', { route: r.name, node: node.id, reason: err.message });
      if (++c.attempts >= MAX_ATTEMPTS) return this.refuse(c, 'no node could take it');
      // Back to the front, keeping what is left of its queue time.
      r.queue.unshift(c);
      this.watchQueued(c, Math.max(1, this.cfg.queueTimeoutMs - (Date.now() - c.arrived)));
      queueMicrotask(() => this.serveQueued(r));
    };
    const onLinkClose = () => fail(new ProtocolError('connection closed', 'closed'));
    const timer = setTimeout(() => fail(new ProtocolError(`no READY within ${this.cfg.readyTimeoutMs} ms`, 'timeout')), this.cfg.readyTimeoutMs);
    sock.on('data', onData);
    sock.once('close', onClose);
    link.sock.once('close', onLinkClose);
    link.attach({
      onData: () => fail(new ProtocolError('data before READY', 'unexpected')),
      onFrame: (frame: Frame) => {
        if (frame.type !== FrameType.ready) return fail(new ProtocolError(`unexpected frame ${frame.type}`, 'unexpected'));
        settle();
        if (sock.destroyed) return drop(link.sock);
        c.chunks = [];
        r.served++;
        node.served++;
        r.wait.add(Date.now() - c.arrived);
        relay(link, sock, (reusable) => {
          if (reusable) this.sessionDone(conn);
        });
      },
    });
    sock.resume();
  }

  /** The client is done and the link is clean: the pull connection serves the next one. */
  private sessionDone(conn: PullConn): void {
    if (conn.sock.destroyed || conn.state !== 'busy') return;
    const node = conn.node;
    conn.state = 'held';
    node.active--;
    node.route.active--;
    if (node.active === 0) node.idleSince = Date.now();
    this.offer(conn);
  }

  /** Pair queued clients with idle pull connections (after capacity appeared). */
  private serveQueued(r: RouteState): void {
    while (r.queue.size && r.idle) {
      const c = r.queue.shift()!;
      if (c.sock.destroyed) continue;
      this.handoff(c, r.popIdle()!);
    }
    this.evaluate(r);
  }

  /** 503 + Retry-After (HTTP) or a close (TCP): never a silent reset for an HTTP client. */
  private refuse(c: Client, why: string): void {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.chunks = [];
    if (c.http) this.answer(c, 503, 'Service Unavailable', `no backend available (${why})`, this.cfg.retryAfterS);
    else drop(c.sock);
  }

  private answer(c: Client, status: number, text: string, body: string, retryAfter?: number): void {
    const sock = c.sock;
    if (sock.destroyed) return;
    if (!c.http) return drop(sock);
    const payload = `${body}\n`;
    sock.removeAllListeners('data');
    sock.end(
      `HTTP/1.1 ${status} ${text}\r\n${retryAfter !== undefined ? `Retry-After: ${retryAfter}\r\n` : ''}Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`,
    );
    sock.resume(); // read and discard until the client closes, so the answer is not lost to a reset
    setTimeout(() => drop(sock), 2000).unref();
  }

  // --- nodes ----------------------------------------------------------------------------

  private async onNode(sock: Socket): Promise<void> {
    sock.on('error', () => {});
    if (this.closing) return drop(sock);
    this.counters.nodeHandshakes++;
    const reader = new FrameReader(sock);
    const edgeNonce = newNonce();
    sock.write(encodeFrame(FrameType.challenge, edgeNonce));
    let meta: NodeMeta;
    let nodeNonce: Buffer;
    try {
      const frame = await reader.next(this.cfg.handshakeTimeoutMs);
      if (frame.type !== FrameType.auth) throw new ProtocolError(`expected AUTH, got frame type ${frame.type}`, 'unexpected');
      const ok = verifyAuth(this.cfg.token, edgeNonce, frame.payload);
      if (!ok) throw new ProtocolError('bad token', 'auth');
      const m = validateMeta(ok.meta);
      if (typeof m === 'string') throw new ProtocolError(m, 'garbled');
      meta = m;
      nodeNonce = ok.nodeNonce;
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
    const node = this.nodeFor(r, meta);
    if (node.stopping) return refuse('stopping');
    // Never more pull connections than the node's concurrency: a slot is a slot.
    if (node.conns.size >= node.meta.concurrency) return refuse('busy');
    sock.write(encodeFrame(FrameType.welcome, welcomePayload(this.cfg.token, nodeNonce, edgeNonce)));
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

  private nodeFor(r: RouteState, meta: NodeMeta): NodeRec {
    let node = r.nodes.get(meta.node);
    if (node) {
      if (node.goneTimer) clearTimeout(node.goneTimer);
      node.goneTimer = null;
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
    this.log.info('node joined', { route: r.name, node: node.id, pid: meta.pid, concurrency: meta.concurrency, app: meta.app });
    this.cfg.onEvent?.('added', `node ${node.id} pid ${meta.pid} (${meta.concurrency} slots)`, r.name);
    return node;
  }

  /** A pull connection is ready: serve the oldest waiting client, or keep it idle. */
  private offer(conn: PullConn): void {
    const node = conn.node;
    const r = node.route;
    if (this.closing) return drop(conn.sock);
    // Nothing may arrive on a pull connection that carries no client: anything that does is a broken node.
    const broken = () => {
      this.counters.garbled++;
      drop(conn.sock);
    };
    conn.link.attach({ onFrame: broken, onData: broken });
    if (node.draining || node.stopping) {
      conn.state = 'held';
      // A link back from its client while the node is being stopped: it gets the STOP now.
      if (node.stopping) conn.sock.write(encodeJson(FrameType.stop, { reason: 'stopping' }));
      return;
    }
    for (let c = r.queue.shift(); c; c = r.queue.shift()) {
      if (!c.sock.destroyed) return this.handoff(c, conn);
    }
    r.pushIdle(conn);
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
    r.nodes.delete(node.id);
    this.log.info('node left', { route: r.name, node: node.id, reason: why });
    this.cfg.onEvent?.('removed', `node ${node.id} ${why}`, r.name);
    this.evaluate(r);
  }

  // --- scaling --------------------------------------------------------------------------

  private instanceCount(r: RouteState): number {
    return r.liveNodes().length + r.pending.size;
  }

  private evaluate(r: RouteState): void {
    if (this.closing) return;
    const now = Date.now();
    const live = r.liveNodes();
    let reconnecting = 0;
    for (const n of live) if (!n.draining) reconnecting += Math.max(0, n.meta.concurrency - n.conns.size);
    const head = r.queue.peek();
    const d = decideScale(
      {
        now,
        queued: r.queue.size,
        oldestWaitMs: head ? now - head.arrived : 0,
        reconnectingSlots: reconnecting,
        pendingStarts: r.pending.size,
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

  private onInstanceExit(inst: Instance, code: number | null, sig: string | null): void {
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

  private stopNode(node: NodeRec, why: string): void {
    if (node.stopping) return;
    node.stopping = true;
    node.route.stops++;
    const stop = encodeJson(FrameType.stop, { reason: why });
    for (const c of node.conns) {
      if (c.state === 'idle') node.route.removeIdle(c);
      if (c.state !== 'busy') {
        c.state = 'held';
        c.sock.write(stop);
      }
    }
    this.log.info('stopping idle node', { route: node.route.name, node: node.id, reason: why });
    this.cfg.onEvent?.('scale', `stop node ${node.id}: ${why}`, node.route.name);
  }

  // --- drain (deploy, top) --------------------------------------------------------------

  /** Take matching nodes out of rotation; resolves when they carry no client or at the timeout. */
  async drain(match: { node?: string; app?: string }, timeoutMs: number, undrain = false): Promise<{ drained: boolean; remaining: number; nodes: number }> {
    const nodes = [...this.routes.values()].flatMap((r) => [...r.nodes.values()]).filter((n) => n.id === match.node || (match.app !== undefined && n.meta.app === match.app));
    for (const n of nodes) {
      n.draining = !undrain;
      for (const c of n.conns) {
        if (undrain && c.state === 'held' && !n.stopping) this.offer(c);
        else if (!undrain && c.state === 'idle') {
          n.route.removeIdle(c);
          c.state = 'held';
        }
      }
    }
    const remaining = () => nodes.reduce((s, n) => s + n.active, 0);
    const deadline = Date.now() + timeoutMs;
    while (!undrain && remaining() > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    return { drained: remaining() === 0, remaining: remaining(), nodes: nodes.length };
  }
}

function listen(server: Server, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port, backlog: 4096 }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
}
