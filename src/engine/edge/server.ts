import { createServer, type Server } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Logger } from '../runtime/logger.js';
import type { ScalePolicy } from './policy.js';
import { drop } from './pipe.js';
import { RouteState, type NodeRec, type RouteView } from './route.js';
import { Instances } from './instances.js';
import { EdgeClients } from './server-clients.js';
import { WarmPath } from './warm.js';
import { warmThreads } from './warm-config.js';
import { WarmRoutes } from './warm-routes.js';

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
  /** The edge token; started instances get a token for their route only (routeToken). */
  token: Buffer;
  maxQueue: number;
  queueTimeoutMs: number;
  retryAfterS: number;
  headerTimeoutMs: number;
  headerMaxBytes: number;
  handshakeTimeoutMs: number;
  readyTimeoutMs: number;
  policy: ScalePolicy;
  startCommand?: readonly string[];
  /** Keep one started, waiting instance per route (`--spare`, docs/proxy.md "Cold start"). */
  spare?: boolean;
  startTimeoutMs: number;
  stopGraceMs: number;
  /** The warm path: an HAProxy (this binary) owns the client ports; its config and socket go in a private directory under `dir`. */
  warm?: { bin: string; dir: string };
  /** HAProxy's threads on the warm path (default: warmThreads of this host's cores). */
  warmThreads?: number;
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

/** After --stop-grace, how long an instance still running has between TERM and KILL. */
const KILL_AFTER_MS = 2000;

/** Lifecycle (listen, tick, close), views and drain; clients in server-clients.ts, nodes in server-nodes.ts. */
export class EdgeServer extends EdgeClients {
  private readonly servers: Server[] = [];
  private nodeServer: Server | null = null;
  private ticker: NodeJS.Timeout | null = null;
  readonly clientPorts: number[] = [];
  nodePort = 0;

  constructor(cfg: EdgeConfig) {
    super(cfg);
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
      this.instances = new Instances(this.cfg.startCommand, { edge: `${host.includes(':') ? `[${host}]` : host}:${this.nodePort}`, token: this.cfg.token }, this.log, (i, code, sig) =>
        this.onInstanceExit(i, code, sig), this.cfg.spare === true,
      );
    }
    const edgePorts: number[] = [];
    for (const l of this.cfg.listeners) {
      const server = createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: l.kind === 'tcp' }, (s) => this.onClient(s, l));
      this.servers.push(server);
      // Warm path: HAProxy owns the client port and sends the edge what it cannot serve.
      edgePorts.push(await listen(server, this.cfg.warm ? '127.0.0.1' : this.cfg.address, this.cfg.warm ? 0 : l.port));
    }
    if (this.cfg.warm) await this.startWarm(this.cfg.warm, edgePorts);
    else this.clientPorts.push(...edgePorts);
    let refreshing = false;
    this.ticker = setInterval(() => {
      if (!this.warm) {
        for (const r of this.routes.values()) this.evaluate(r);
        return;
      }
      if (refreshing) return;
      refreshing = true;
      void this.warm
        .refresh(this.routes.values())
        .catch((err: Error) => this.log.debug('haproxy stats', { reason: err.message }))
        .finally(() => {
          refreshing = false;
          for (const r of this.routes.values()) this.evaluate(r);
        });
    }, 250);
    this.ticker.unref();
    for (const r of this.routes.values()) this.evaluate(r);
    for (const r of this.routes.keys()) this.instances?.keepSpare(r);
  }

  private async startWarm(opts: { bin: string; dir: string }, edgePorts: number[]): Promise<void> {
    const ports = await freePorts(this.cfg.address, this.cfg.listeners.map((l) => l.port));
    const threads = this.cfg.warmThreads ?? warmThreads(availableParallelism());
    const entries = new Map<string, number[]>();
    const loopback = await freePorts('127.0.0.1', [...this.routes.keys()].flatMap(() => new Array<number>(threads).fill(0)));
    [...this.routes.keys()].forEach((r, i) => entries.set(r, loopback.slice(i * threads, (i + 1) * threads)));
    const path = new WarmPath(this.log, opts.bin);
    const perRoute = Math.min(256, this.cfg.policy.maxInstances + 8);
    this.warm = new WarmRoutes(path, entries, perRoute, this.log, (n, what) => this.warmChanged(n, what));
    await path.start(opts.dir, {
      listeners: this.cfg.listeners.map((l, i) => ({ ...l, port: ports[i]! })),
      address: this.cfg.address,
      edgePorts,
      hosts: this.cfg.hosts,
      defaultRoute: this.cfg.defaultRoute,
      entries,
      threads,
      slots: perRoute,
      queueTimeoutMs: this.cfg.queueTimeoutMs,
      headerTimeoutMs: this.cfg.headerTimeoutMs,
    });
    this.clientPorts.push(...ports);
  }

  /**
   * Stop in order, so no client in flight is cut: stop accepting (clients and nodes), answer the
   * queued clients (503 / close), let the clients being served finish within --stop-grace while
   * every node this edge started gets STOP as soon as it carries no client (the node then stops
   * its app and exits), and only then end what is still running (TERM to its group, KILL soon
   * after). Before, every instance's group got TERM at once: the app died under its requests.
   */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private closed: Promise<void> | null = null;

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.instances?.closeSpares();
    if (this.ticker) clearInterval(this.ticker);
    const deadline = Date.now() + this.cfg.stopGraceMs;
    // HAProxy stops listening at once and lets its connections finish (a soft stop).
    const haproxyDone = this.warm?.path.softStop(deadline);
    for (const s of [...this.servers, this.nodeServer]) s?.close();
    for (const r of this.routes.values()) for (let c = r.queue.shift(); c; c = r.queue.shift()) this.refuse(c, 'edge stopping');
    const nodes = [...this.routes.values()].flatMap((r) => [...r.nodes.values()]);
    for (const n of nodes) if (!n.warm) this.retire(n);
    // A warm node's app serves HAProxy's connections: it is stopped once HAProxy is done with them.
    await haproxyDone;
    if (this.warm && !this.warm.path.exited) {
      this.log.warn('clients still served at the end of --stop-grace; closing them', { clients: nodes.reduce((sum, n) => sum + (n.warm ? n.active : 0), 0), path: 'warm' });
      await this.warm.path.close();
    }
    for (const n of nodes) if (n.warm) this.retireWarm(n);
    // Instances still starting carry no client: nothing to wait for.
    for (const i of this.instances?.all() ?? []) if (!i.connected) void this.instances!.stop(i.id, KILL_AFTER_MS);
    const busy = () => [...this.routes.values()].reduce((sum, r) => sum + r.active, 0);
    while ((busy() > 0 || (this.instances?.size ?? 0) > 0) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 25));
    if (busy() > 0) this.log.warn('clients still served at the end of --stop-grace; closing them', { clients: busy() });
    await this.instances?.stopAll(KILL_AFTER_MS);
    for (const n of nodes) for (const c of n.conns) drop(c.sock);
    await this.warm?.path.close();
  }

  private retireWarm(n: NodeRec): void {
    n.warm!.stopDue = true;
    if (n.instance === undefined) for (const c of n.conns) drop(c.sock);
    else {
      n.stopping = true;
      this.warmChanged(n, 'stop');
    }
  }

  get warmPid(): number | undefined {
    return this.warm?.path.pid;
  }

  get warmThreads(): number | undefined {
    return this.warm?.path.threads;
  }

  view(): Record<string, RouteView> {
    const out: Record<string, RouteView> = {};
    for (const [name, r] of this.routes) out[name] = r.view(this.instanceCount(r));
    return out;
  }

  /** Take matching nodes out of rotation; resolves when they carry no client or at the timeout. */
  async drain(match: { node?: string; app?: string }, timeoutMs: number, undrain = false): Promise<{ drained: boolean; remaining: number; nodes: number }> {
    const nodes = [...this.routes.values()].flatMap((r) => [...r.nodes.values()]).filter((n) => n.id === match.node || (match.app !== undefined && n.meta.app === match.app));
    for (const n of nodes) {
      n.draining = !undrain;
      if (n.warm) {
        if (undrain) this.warm?.enable(n);
        else void this.warm?.disable(n);
      }
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
    // Warm nodes: `active` is HAProxy's count, read by the tick after the slot is off.
    if (!undrain && nodes.some((n) => n.warm)) await new Promise((res) => setTimeout(res, 300));
    while (!undrain && remaining() > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    return { drained: remaining() === 0, remaining: remaining(), nodes: nodes.length };
  }
}

/**
 * Ports HAProxy will bind, each checked free by binding it here first (HAProxy binds with
 * SO_REUSEPORT and would silently share a port another process holds); 0 picks a free one.
 */
async function freePorts(address: string, wanted: readonly number[]): Promise<number[]> {
  const probes = wanted.map(() => createServer());
  try {
    const out: number[] = [];
    for (const [i, p] of wanted.entries()) out.push(await listen(probes[i]!, address, p));
    return out;
  } finally {
    await Promise.all(probes.map((probe) => new Promise((res) => (probe.listening ? probe.close(res) : res(null)))));
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
