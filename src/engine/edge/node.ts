import { connect, createServer, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { Logger } from '../runtime/logger.js';
import { backoffMs } from '../runtime/clock.js';
import { authPayload, encodeFrame, FrameReader, FrameType, ProtocolError, verifyWelcome } from './protocol.js';
import { drop } from './pipe.js';
import { Link, relay } from './link.js';
import { terminate } from './process.js';

/**
 * The node: starts the app (PORT in its environment), waits until it accepts connections, then
 * keeps `concurrency` pull connections open to the edge. Each carries one client at a time: a
 * slot opens its next pull connection only after its client is done, so the app never sees more
 * than `concurrency` connections from us. Stops (TERM, then KILL after the grace period) when
 * the edge says STOP, after its own idle timeout, when the edge is gone too long, or on a signal.
 */
export interface NodeConfig {
  edgeHost: string;
  edgePort: number;
  route: string;
  concurrency: number;
  token: Buffer;
  command: readonly string[];
  appHost: string;
  /** 0: pick a free port. */
  appPort: number;
  startTimeoutMs: number;
  /** 0: only the edge decides (STOP). */
  idleTimeoutMs: number;
  /** Exit when no pull connection reached the edge for this long (0: never). */
  orphanTimeoutMs: number;
  graceMs: number;
  handshakeTimeoutMs: number;
  instance?: string;
  logger: Logger;
  onEvent?: (type: string, message: string) => void;
}

export interface NodeView {
  route: string;
  edge: string;
  state: 'starting' | 'serving' | 'draining' | 'stopping' | 'stopped';
  concurrency: number;
  active: number;
  idle: number;
  served: number;
  appPid: number | null;
  appPort: number;
  appFailures: number;
  edgeFailures: number;
  idleForMs: number;
}

export interface NodeExit {
  reason: string;
  /** Non-zero when the node stopped because something is wrong (app died, token refused). */
  code: number;
}

/** The edge refused us for a reason a retry will not fix. */
class FatalRefusal extends Error {}

export class EdgeNode {
  readonly id = randomBytes(8).toString('hex');
  private state: NodeView['state'] = 'starting';
  private active = 0;
  private served = 0;
  private appFailures = 0;
  private edgeFailures = 0;
  private idleSince = Date.now();
  private lastEdgeContact = Date.now();
  private readonly idle = new Set<Socket>();
  private app: { pid: number; exited: Promise<unknown> } | null = null;
  private appPort = 0;
  private ticker: NodeJS.Timeout | null = null;
  private undrained: { promise: Promise<void>; resolve: () => void } | null = null;
  private finish!: (e: NodeExit) => void;
  readonly done: Promise<NodeExit> = new Promise((r) => (this.finish = r));
  private readonly log: Logger;

  constructor(private readonly cfg: NodeConfig) {
    this.log = cfg.logger;
  }

  /** Start the app and the pull connections; resolves once the app accepts connections. */
  async start(): Promise<void> {
    this.appPort = this.cfg.appPort || (await freePort(this.cfg.appHost));
    // node:child_process, not execa: the node is on a waiting client's path (cold start), and
    // loading execa was a third of its start-up.
    const child = spawn(this.cfg.command[0]!, this.cfg.command.slice(1), { env: appEnv(process.env, this.appPort, this.cfg.route), stdio: ['ignore', 2, 2] });
    const exited = new Promise<{ exitCode: number | null; signal: string | null }>((resolve) => {
      child.once('exit', (exitCode, sig) => resolve({ exitCode, signal: sig }));
      child.once('error', () => resolve({ exitCode: null, signal: null }));
    });
    if (child.pid === undefined) {
      await exited;
      throw new Error(`cannot start ${this.cfg.command[0]}`);
    }
    this.app = { pid: child.pid, exited };
    void exited.then((r) => {
      if (this.state !== 'stopping' && this.state !== 'stopped') {
        this.log.error('app exited', { pid: child.pid, code: r.exitCode, signal: r.signal });
        void this.stop(`app exited (${r.exitCode ?? r.signal})`, 1);
      }
    });
    const started = Date.now();
    await waitForPort(this.cfg.appHost, this.appPort, this.cfg.startTimeoutMs, () => this.state !== 'starting');
    if (this.state !== 'starting') return; // the app died while starting
    this.log.info('app accepts connections', { pid: child.pid, port: this.appPort, ms: Date.now() - started });
    this.state = 'serving';
    this.idleSince = this.lastEdgeContact = Date.now();
    for (let i = 0; i < this.cfg.concurrency; i++) void this.slot();
    this.ticker = setInterval(() => this.tick(), 250);
  }

  view(): NodeView {
    return {
      route: this.cfg.route,
      edge: `${this.cfg.edgeHost}:${this.cfg.edgePort}`,
      state: this.state,
      concurrency: this.cfg.concurrency,
      active: this.active,
      idle: this.idle.size,
      served: this.served,
      appPid: this.app?.pid ?? null,
      appPort: this.appPort,
      appFailures: this.appFailures,
      edgeFailures: this.edgeFailures,
      idleForMs: this.active ? 0 : Date.now() - this.idleSince,
    };
  }

  /** Stop taking clients; resolves when none is left or at the timeout. */
  async drain(timeoutMs: number): Promise<{ drained: boolean; remaining: number }> {
    if (this.state === 'serving') {
      this.state = 'draining';
      let resolve!: () => void;
      this.undrained = { promise: new Promise<void>((r) => (resolve = r)), resolve };
      for (const s of this.idle) drop(s);
    }
    const deadline = Date.now() + timeoutMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return { drained: this.active === 0, remaining: this.active };
  }

  undrain(): void {
    if (this.state !== 'draining') return;
    this.state = 'serving';
    this.undrained?.resolve();
    this.undrained = null;
  }

  /** Close the pull connections, let active clients finish (up to the grace), stop the app. */
  async stop(reason: string, code = 0): Promise<NodeExit> {
    if (this.state === 'stopping' || this.state === 'stopped') return this.done;
    this.log.info('stopping', { reason, active: this.active });
    this.cfg.onEvent?.('stop', reason);
    this.state = 'stopping';
    this.undrained?.resolve();
    if (this.ticker) clearInterval(this.ticker);
    for (const s of this.idle) drop(s);
    const deadline = Date.now() + this.cfg.graceMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    if (this.app) {
      const how = await terminate(this.app.pid, this.cfg.graceMs, this.app.exited);
      if (how === 'kill') this.log.warn('app did not stop after TERM; killed', { pid: this.app.pid });
    }
    this.state = 'stopped';
    this.finish({ reason, code });
    return this.done;
  }

  private tick(): void {
    const now = Date.now();
    if (this.idle.size + this.active > 0) this.lastEdgeContact = now;
    if (this.state !== 'serving') return;
    if (this.cfg.idleTimeoutMs > 0 && this.active === 0 && now - this.idleSince >= this.cfg.idleTimeoutMs) {
      void this.stop(`idle for ${Math.round((now - this.idleSince) / 1000)} s`);
    } else if (this.cfg.orphanTimeoutMs > 0 && this.active === 0 && now - this.lastEdgeContact >= this.cfg.orphanTimeoutMs) {
      void this.stop('edge unreachable', 1);
    }
  }

  /** One slot: a pull connection that carries one client after the other (reconnected when lost). */
  private async slot(): Promise<void> {
    let failures = 0;
    let link: Link | null = null;
    while (this.state === 'serving' || this.state === 'draining') {
      if (this.state === 'draining') {
        if (link) drop(link.sock);
        link = null;
        await this.undrained?.promise;
        continue;
      }
      if (!link || link.closed) {
        try {
          link = await this.connectEdge();
          failures = 0;
        } catch (err) {
          link = null;
          if (err instanceof FatalRefusal) {
            void this.stop(err.message, 1);
            return;
          }
          const busy = err instanceof Error && err.message === 'busy';
          if (!busy) {
            this.edgeFailures++;
            if (failures++ === 0) this.log.warn('cannot reach the edge; retrying', { edge: `${this.cfg.edgeHost}:${this.cfg.edgePort}`, error: (err as Error).message });
          }
          await new Promise((r) => setTimeout(r, busy ? 20 : backoffMs(failures, 100, 5000)));
          continue;
        }
      }
      if (this.state !== 'serving') {
        drop(link.sock);
        link = null;
        continue;
      }
      const idleSock = link.sock;
      this.idle.add(idleSock);
      let frame;
      try {
        frame = await link.next();
      } catch {
        drop(link.sock);
        link = null;
        continue; // the edge closed it (restart, drain): open another
      } finally {
        this.idle.delete(idleSock);
      }
      if (frame.type === FrameType.stop) {
        drop(link.sock);
        void this.stop('the edge stopped this idle node');
        return;
      }
      if (frame.type !== FrameType.client || this.state !== 'serving') {
        drop(link.sock);
        link = null;
        continue;
      }
      this.active++;
      const reusable = await this.serve(link);
      this.active--;
      if (this.active === 0) this.idleSince = Date.now();
      if (!reusable) {
        drop(link.sock);
        link = null;
      }
    }
    if (link) drop(link.sock);
  }

  /**
   * Connect to the app, say READY, then relay between the link and the app. Resolves true when
   * the session ended cleanly and the link can carry the next client.
   */
  private serve(link: Link): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      // The client's first bytes arrive with CLIENT: kept until the app accepts (the edge bounds them).
      const early: Buffer[] = [];
      link.attach({
        onData: (chunk) => early.push(chunk),
        onFrame: () => drop(link.sock), // only DATA may come before READY
      });
      const app = connect({ host: this.cfg.appHost, port: this.appPort, noDelay: true, allowHalfOpen: true });
      app.on('error', () => {});
      const failed = () => {
        // Nothing reached the app: the edge gives the client to another node.
        link.sock.off('close', gone);
        link.release();
        this.appFailures++;
        drop(link.sock);
        resolve(false);
      };
      // The client left while we were connecting: do not keep an app connection for nobody.
      const gone = () => {
        app.off('error', failed);
        link.release();
        drop(app);
        resolve(false);
      };
      link.sock.once('close', gone);
      app.once('error', failed);
      app.once('connect', () => {
        app.off('error', failed);
        link.sock.off('close', gone);
        link.release();
        this.served++;
        link.sendFrame(FrameType.ready);
        for (const chunk of early) app.write(chunk);
        relay(link, app, resolve);
      });
    });
  }

  private async connectEdge(): Promise<Link> {
    const sock = connect({ host: this.cfg.edgeHost, port: this.cfg.edgePort, noDelay: true, allowHalfOpen: true, keepAlive: true, keepAliveInitialDelay: 10_000 });
    sock.on('error', () => {});
    const reader = new FrameReader(sock);
    try {
      const challenge = await reader.next(this.cfg.handshakeTimeoutMs);
      if (challenge.type !== FrameType.challenge || challenge.payload.length !== 32) throw new ProtocolError('expected CHALLENGE', 'unexpected');
      const meta = { node: this.id, route: this.cfg.route, concurrency: this.cfg.concurrency, pid: process.pid, instance: this.cfg.instance, app: `${this.cfg.appHost}:${this.appPort}`, ...(this.cfg.idleTimeoutMs > 0 ? { selfIdle: true } : {}) };
      const { payload, nodeNonce } = authPayload(this.cfg.token, challenge.payload, meta);
      sock.write(encodeFrame(FrameType.auth, payload));
      const answer = await reader.next(this.cfg.handshakeTimeoutMs);
      if (answer.type === FrameType.refused) {
        const why = answer.payload.toString('latin1', 0, 40);
        if (why === 'busy') throw new Error('busy');
        if (why === 'stopping') throw new FatalRefusal('the edge is stopping this node');
        throw new FatalRefusal(why === 'auth' ? 'the edge refused our token (check ELASTIC_EDGE_TOKEN)' : `the edge refused this node: ${why.replace(/[^\x20-\x7e]/g, '?')}`);
      }
      if (answer.type !== FrameType.welcome || !verifyWelcome(this.cfg.token, nodeNonce, challenge.payload, answer.payload)) {
        throw new FatalRefusal('the edge did not prove it knows the token');
      }
      return new Link(sock, reader.detach());
    } catch (err) {
      reader.detach();
      drop(sock);
      throw err;
    }
  }
}

/**
 * The app's environment: ours without elastic's own variables (the edge token above all: an app
 * holding it could join the edge as a node of any route), plus what the app needs: PORT and
 * ELASTIC_ROUTE.
 */
export function appEnv(env: NodeJS.ProcessEnv, port: number, route: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.startsWith('ELASTIC_')) out[k] = v;
  return { ...out, PORT: String(port), ELASTIC_ROUTE: route };
}

async function freePort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, host, () => resolve());
  });
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Poll until something accepts connections on host:port. */
export async function waitForPort(host: string, port: number, timeoutMs: number, abort: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (abort()) return;
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`the app did not accept connections on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10)); // a client is waiting for this app (cold start)
  }
}
