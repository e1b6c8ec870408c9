import { isProxyNodeCommand } from './edge/instances.js';
import { ExitCode, UserError } from './errors.js';
import { isAddress, isIdent, printable } from './model/validate.js';
import { nullLogger, type Logger } from './runtime/logger.js';
import { StatusServer } from './runtime/status.js';
import { runDir } from './runtime/paths.js';
import { EdgeServer, type EdgeConfig, type EdgeListener } from './edge/server.js';
import { timeoutOf } from './proxy-node.js';
import { generateToken, loadToken } from './edge/token.js';
import type { ScalePolicy } from './edge/policy.js';
import { WARM_HOST } from './edge/warm-config.js';

/**
 * Engine entry points of `elastic proxy edge` and `elastic proxy node`: configuration checks,
 * the token, the status socket, and a clean stop on the abort signal. The machinery is in
 * src/engine/edge/ (see docs/proxy.md).
 */
export type { EdgeListener } from './edge/server.js';
export type { RouteView } from './edge/route.js';
export type { NodeView, NodeExit } from './edge/node.js';
export { startNode, runNode, type NodeOptions, type RunningNode } from './proxy-node.js';

export const DEFAULT_POLICY: ScalePolicy = {
  minInstances: 0,
  maxInstances: 8,
  idleTimeoutMs: 60_000,
  waitThresholdMs: 1000,
  startBurst: 4,
  startRatePerSec: 1,
};

export interface EdgeOptions {
  address?: string;
  listeners: EdgeListener[];
  hosts?: Record<string, string>;
  defaultRoute?: string;
  nodeAddress?: string;
  nodePort?: number;
  tokenFile?: string;
  env?: NodeJS.ProcessEnv;
  maxQueue?: number;
  queueTimeoutMs?: number;
  retryAfterS?: number;
  headerTimeoutMs?: number;
  headerMaxBytes?: number;
  handshakeTimeoutMs?: number;
  readyTimeoutMs?: number;
  policy?: Partial<ScalePolicy>;
  startCommand?: string[];
  /** Keep one started, waiting instance per route (the start command must be `elastic proxy node`); 'auto': when it is. */
  spare?: boolean | 'auto';
  startTimeoutMs?: number;
  stopGraceMs?: number;
  /**
   * `haproxy`: the warm path (docs/proxy.md): an HAProxy owns the client ports and connects
   * clients straight to the apps of local nodes. `off` (the default here; the CLI's is haproxy):
   * every client goes through the edge and a pulling node.
   */
  warm?: 'haproxy' | 'off';
  haproxyBin?: string;
  /** HAProxy's threads on the warm path, 1-64 (default: 2 on a host with 2 or more cores, else 1; docs/proxy.md "Threads"). */
  warmThreads?: number;
  /** Status socket name (default: the first client port). */
  name?: string;
  /** Serve a status socket (default true). */
  status?: boolean;
  logger?: Logger;
}

export interface RunningEdge {
  readonly server: EdgeServer;
  readonly status: StatusServer | null;
  readonly clientPorts: number[];
  readonly nodePort: number;
  /** The token text (generated when none was configured: only started instances know it). */
  readonly token: string;
  close(): Promise<void>;
}

/** Check the options, resolve the token, listen, serve the status socket. */
export async function startEdge(opts: EdgeOptions): Promise<RunningEdge> {
  const logger = opts.logger ?? nullLogger;
  if (opts.listeners.length === 0) throw new UserError('no client port', 'give one with -p PORT (or --http-port / --tls-port)', ExitCode.usage);
  const hosts = new Map<string, string>();
  for (const [h, r] of Object.entries(opts.hosts ?? {})) hosts.set(h.toLowerCase(), r);
  const routes = [...opts.listeners.map((l) => l.route ?? 'default'), ...hosts.values(), ...(opts.defaultRoute ? [opts.defaultRoute] : [])];
  for (const r of routes) if (!isIdent(r)) throw new UserError(`invalid route name "${printable(r, 60)}"`, 'use letters, digits, "_", "." and "-"', ExitCode.usage);
  if (opts.listeners.some((l) => l.kind !== 'tcp') && hosts.size === 0 && !opts.defaultRoute) {
    throw new UserError('Host/SNI routing needs routes', 'add --host NAME=ROUTE or --default-route ROUTE', ExitCode.usage);
  }
  for (const [flag, a] of [['--address', opts.address], ['--node-address', opts.nodeAddress]] as const) {
    if (a !== undefined && !isAddress(a)) throw new UserError(`invalid ${flag} "${printable(a, 60)}"`, 'give a local IPv4 or IPv6 address, e.g. 127.0.0.1 or 0.0.0.0', ExitCode.usage);
  }
  if (opts.name !== undefined && !isIdent(opts.name)) throw new UserError(`invalid --name "${printable(opts.name, 60)}"`, 'use letters, digits, "_", "." and "-" (it names the status socket edge.NAME.sock)', ExitCode.usage);
  if (opts.warm === 'haproxy') {
    const bad = [...hosts.keys()].find((h) => !WARM_HOST.test(h));
    if (bad !== undefined) throw new UserError(`--host "${printable(bad, 60)}" is not a host name the warm path can match`, 'use letters, digits, "_", "-" and dots, optionally starting with "*." (or --warm off)', ExitCode.usage);
  }
  if (opts.warmThreads !== undefined && !(Number.isInteger(opts.warmThreads) && opts.warmThreads >= 1 && opts.warmThreads <= 64)) {
    throw new UserError(`invalid warm-path thread count ${printable(String(opts.warmThreads), 20)}`, 'give an integer from 1 to 64', ExitCode.usage);
  }
  const policy = { ...DEFAULT_POLICY, ...opts.policy };
  if (policy.minInstances > policy.maxInstances) throw new UserError('--min-instances is above --max-instances', 'lower --min-instances or raise --max-instances', ExitCode.usage);
  if (opts.spare === true && !opts.startCommand?.length) throw new UserError('--spare needs a start command', 'add the command after -- (elastic proxy node -- APP)', ExitCode.usage);
  if (policy.minInstances > 0 && !opts.startCommand?.length) throw new UserError('--min-instances needs a start command', 'add the command after --', ExitCode.usage);
  let loaded = await loadToken({ file: opts.tokenFile, env: opts.env });
  let tokenText: string;
  if (loaded) {
    tokenText = loaded.token.toString('utf8');
  } else if (opts.startCommand?.length) {
    tokenText = generateToken();
    loaded = { token: Buffer.from(tokenText), from: 'generated' };
    logger.warn('no ELASTIC_EDGE_TOKEN or --token-file: generated a token for the instances this edge starts; other nodes cannot join');
  } else {
    throw new UserError('no token for the node port', 'set ELASTIC_EDGE_TOKEN or --token-file (the nodes need the same token)', ExitCode.config);
  }
  let status: StatusServer | null = null;
  const cfg: EdgeConfig = {
    address: opts.address ?? '127.0.0.1',
    listeners: opts.listeners,
    hosts,
    defaultRoute: opts.defaultRoute,
    nodeAddress: opts.nodeAddress ?? '127.0.0.1',
    nodePort: opts.nodePort ?? 0,
    token: loaded.token,
    maxQueue: opts.maxQueue ?? 1000,
    queueTimeoutMs: opts.queueTimeoutMs ?? 30_000,
    retryAfterS: opts.retryAfterS ?? 5,
    headerTimeoutMs: opts.headerTimeoutMs ?? 10_000,
    headerMaxBytes: opts.headerMaxBytes ?? 16 * 1024,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
    readyTimeoutMs: opts.readyTimeoutMs ?? 5000,
    policy,
    startCommand: opts.startCommand,
    spare: opts.spare === 'auto' ? isProxyNodeCommand(opts.startCommand) : opts.spare,
    startTimeoutMs: opts.startTimeoutMs ?? 30_000,
    stopGraceMs: opts.stopGraceMs ?? 10_000,
    warm: opts.warm === 'haproxy' ? { bin: opts.haproxyBin ?? 'haproxy', dir: runDir() } : undefined,
    warmThreads: opts.warmThreads,
    logger,
    onEvent: (type, msg, route) => status?.event(type, msg, route),
  };
  const server = new EdgeServer(cfg);
  try {
    await server.start();
  } catch (err) {
    await server.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      throw new UserError(`cannot listen: ${e.message}`, 'pick another port or address', e.code === 'EACCES' ? ExitCode.permission : ExitCode.unavailable);
    }
    throw err;
  }
  const counters = server.counters;
  if (opts.status !== false) {
    status = new StatusServer({
      kind: 'edge',
      name: opts.name ?? String(server.clientPorts[0]),
      config: {
        clients: opts.listeners.map((l, i) => ({ kind: l.kind, address: cfg.address, port: server.clientPorts[i], route: l.route })),
        nodes: `${cfg.nodeAddress}:${server.nodePort}`,
        hosts: Object.fromEntries(hosts),
        policy,
        maxQueue: cfg.maxQueue,
        queueTimeoutMs: cfg.queueTimeoutMs,
        startCommand: opts.startCommand?.map((a) => printable(a, 100)),
        spare: cfg.spare === true,
        warm: cfg.warm ? { haproxyPid: server.warmPid, threads: server.warmThreads } : null,
        counters, // live: the same object the edge updates
      },
      services: () => server.view(),
      actions: {
        drain: async (args) => server.drain(drainMatch(args), timeoutOf(args)),
        undrain: async (args) => server.drain(drainMatch(args), 0, true),
      },
    });
    try {
      await status.listen();
    } catch (err) {
      await server.close();
      throw err;
    }
  }
  logger.info('edge listening', { clients: server.clientPorts.map((p) => `${cfg.address}:${p}`).join(','), nodes: `${cfg.nodeAddress}:${server.nodePort}`, token: loaded.from });
  return {
    server,
    status,
    clientPorts: server.clientPorts,
    nodePort: server.nodePort,
    token: tokenText,
    close: async () => {
      await server.close();
      await status?.close();
    },
  };
}

function drainMatch(args: Record<string, unknown>): { node?: string; app?: string } {
  if (typeof args.node === 'string') return { node: args.node };
  if (typeof args.address === 'string' && (typeof args.port === 'number' || typeof args.port === 'string')) return { app: `${args.address}:${args.port}` };
  throw new Error('drain needs {node} or {address, port}');
}


/** Run until the signal aborts; then stop the instances this edge started. */
export async function runEdge(opts: EdgeOptions, signal: AbortSignal, onListening?: (edge: RunningEdge) => void): Promise<void> {
  const edge = await startEdge(opts);
  onListening?.(edge);
  await untilAborted(signal);
  (opts.logger ?? nullLogger).info('stopping edge');
  await edge.close();
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
