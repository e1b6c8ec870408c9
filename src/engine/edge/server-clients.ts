import { connect, type Socket } from 'node:net';
import { printable } from '../model/validate.js';
import { encodeJson, FrameType, ProtocolError, type Frame } from './protocol.js';
import { drop } from './pipe.js';
import { dataFrame, MAX_DATA, relay } from './link.js';
import type { Client, PullConn, RouteState } from './route.js';
import { matchHost, sniffHttp, sniffTls, type Sniff } from './sniff.js';
import { EdgeNodes } from './server-nodes.js';
import type { EdgeListener } from './server.js';

const MAX_ATTEMPTS = 5;

/**
 * The client side of the edge server: accept a client, find its route (port, Host header or
 * SNI), hand it to an idle pull connection or queue it, and answer the ones that cannot be served.
 */
export abstract class EdgeClients extends EdgeNodes {
  private nextId = 1;

  protected onClient(sock: Socket, l: EdgeListener): void {
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
    if (this.closing) return this.refuse(c, 'edge stopping'); // its head arrived while we stop
    const conn = r.popIdle();
    if (conn) return this.handoff(c, conn);
    if (!r.queue.push(c)) {
      r.rejected++;
      return this.refuse(c, 'queue full');
    }
    this.watchQueued(c, this.cfg.queueTimeoutMs);
    this.evaluate(r);
    // HAProxy sent it here because the route had no free slot: it goes back as slots free up.
    if (this.warm?.on(r)) void this.pumpWarm(r);
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
  protected refuse(c: Client, why: string): void {
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

  /** A pull connection is ready: serve the oldest waiting client, or keep it idle. */
  protected override offer(conn: PullConn): void {
    const node = conn.node;
    const r = node.route;
    if (this.closing && !node.stopping) return drop(conn.sock);
    // Nothing may arrive on a pull connection that carries no client: anything that does is a broken node.
    const broken = () => {
      this.counters.garbled++;
      drop(conn.sock);
    };
    conn.link.attach({ onFrame: broken, onData: broken });
    // A warm node's app gets its clients from HAProxy: its pull connections only wait for STOP.
    if (node.warm && !node.warm.stopDue) {
      conn.state = 'held';
      return;
    }
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

  private readonly pumping = new Set<RouteState>();

  /**
   * Hand a warm route's held clients to HAProxy's entry for the route as its slots free up (read
   * from HAProxy's stats while clients are held), so HAProxy's maxconn stays the one
   * limit on the apps. They stay in the edge's queue until then: the queue bound, the queue
   * timeout and its 503 + Retry-After hold as on the pull path.
   */
  protected override async pumpWarm(r: RouteState, fresh = false): Promise<void> {
    const warm = this.warm;
    if (!warm || this.pumping.has(r)) return;
    this.pumping.add(r);
    try {
      // 10 ms while slots free up, backing off to 100 ms while none does (long-lived connections).
      // `fresh`: a slot just went ready with its sessions read before: no stats round trip for
      // the first pass (a cold start's held clients; a client too many goes back to the edge).
      for (let delay = 10, first = true; r.queue.size && warm.on(r) && !this.closing; first = false) {
        if (!(fresh && first)) await warm.refresh([r]).catch(() => {});
        const before = r.queue.size;
        // To the entry of a thread whose backend has a free share (each thread has its own).
        warm.free(r).forEach((free, t) => {
          for (; free > 0 && r.queue.size; free--) {
            const c = r.queue.shift()!;
            if (!c.sock.destroyed) this.forward(c, warm.entries.get(r.name)![t]!);
          }
        });
        delay = r.queue.size < before ? 10 : Math.min(100, delay * 2);
        if (r.queue.size) await new Promise((res) => setTimeout(res, delay));
      }
    } finally {
      this.pumping.delete(r);
    }
  }

  /** A held client to HAProxy's warm entry, with the bytes read so far; then a plain pipe. */
  private forward(c: Client, port: number): void {
    const r = c.route!;
    this.unwatch(c);
    r.forwarded++;
    r.wait.add(Date.now() - c.arrived);
    const up = connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true });
    // The entry takes a PROXY header: its destination is the listener the client reached, where
    // HAProxy sends it back if its slot is taken meanwhile (docs/proxy.md, Overflow).
    up.write(`PROXY TCP4 127.0.0.1 127.0.0.1 ${c.sock.remotePort ?? 0} ${c.sock.localPort ?? 0}\r\n`);
    for (const chunk of c.chunks) up.write(chunk);
    c.chunks = [];
    const sock = c.sock;
    const abort = () => {
      drop(up);
      drop(sock);
    };
    up.on('error', abort);
    sock.on('error', abort);
    up.on('close', (hadError) => hadError && abort());
    sock.on('close', (hadError) => hadError && abort());
    sock.pipe(up);
    up.pipe(sock);
    sock.resume();
  }
}
