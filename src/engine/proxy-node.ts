import { ExitCode, UserError } from './errors.js';
import { isIdent, printable } from './model/validate.js';
import { nullLogger, type Logger } from './runtime/logger.js';
import { StatusServer } from './runtime/status.js';
import { EdgeNode, type NodeConfig, type NodeExit } from './edge/node.js';
import { loadToken } from './edge/token.js';

/**
 * Engine entry points of `elastic proxy node`, apart from the edge's (proxy.ts) so that a node
 * started by an edge loads only what it runs (bin/run.js starts it without oclif: cold start).
 */
export interface NodeOptions {
  edge?: string;
  route?: string;
  concurrency?: number;
  command: string[];
  tokenFile?: string;
  env?: NodeJS.ProcessEnv;
  appHost?: string;
  appPort?: number;
  startTimeoutMs?: number;
  idleTimeoutMs?: number;
  orphanTimeoutMs?: number;
  graceMs?: number;
  status?: boolean;
  logger?: Logger;
}

export interface RunningNode {
  readonly node: EdgeNode;
  readonly status: StatusServer | null;
}

export async function startNode(opts: NodeOptions): Promise<RunningNode> {
  const env = opts.env ?? process.env;
  const logger = opts.logger ?? nullLogger;
  if (opts.command.length === 0) throw new UserError('no app command', 'put the command that starts the app after --, e.g. -- node server.js', ExitCode.usage);
  const edgeText = opts.edge ?? env.ELASTIC_EDGE;
  if (!edgeText) throw new UserError('no edge address', 'give --edge HOST:PORT (the edge passes ELASTIC_EDGE to the instances it starts)', ExitCode.usage);
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(edgeText) ?? /^([A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(edgeText);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UserError(`invalid edge address "${printable(edgeText, 80)}"`, 'write it as HOST:PORT, e.g. 127.0.0.1:7070', ExitCode.usage);
  const route = opts.route ?? env.ELASTIC_ROUTE ?? 'default';
  if (!isIdent(route)) throw new UserError(`invalid route name "${printable(route, 60)}"`, 'use letters, digits, "_", "." and "-"', ExitCode.usage);
  const loaded = await loadToken({ file: opts.tokenFile, env });
  if (!loaded) throw new UserError('no token for the edge', 'set ELASTIC_EDGE_TOKEN or --token-file (the same token as the edge)', ExitCode.config);
  const instance = env.ELASTIC_INSTANCE && isIdent(env.ELASTIC_INSTANCE) ? env.ELASTIC_INSTANCE : undefined;
  let status: StatusServer | null = null;
  const cfg: NodeConfig = {
    edgeHost: m[1]!,
    edgePort: Number(m[2]),
    route,
    concurrency: opts.concurrency ?? 1,
    token: loaded.token,
    command: opts.command,
    appHost: opts.appHost ?? '127.0.0.1',
    appPort: opts.appPort ?? 0,
    startTimeoutMs: opts.startTimeoutMs ?? 30_000,
    idleTimeoutMs: opts.idleTimeoutMs ?? 0,
    // A node the edge started is orphaned when the edge is gone: do not keep the app forever.
    orphanTimeoutMs: opts.orphanTimeoutMs ?? (instance ? 30_000 : 0),
    graceMs: opts.graceMs ?? 10_000,
    handshakeTimeoutMs: 5000,
    instance,
    logger,
    onEvent: (type, msg) => status?.event(type, msg, route),
  };
  const node = new EdgeNode(cfg);
  if (opts.status !== false) {
    status = new StatusServer({
      kind: 'node',
      name: `${route}-${process.pid}`,
      config: { edge: edgeText, route, concurrency: cfg.concurrency, command: opts.command.map((a) => printable(a, 100)), instance },
      services: () => ({ [route]: node.view() }),
      actions: {
        drain: async (args) => node.drain(timeoutOf(args)),
        undrain: async () => (node.undrain(), { undrained: true }),
        stop: async () => (void node.stop('asked on the status socket'), { stopping: true }),
      },
    });
    await status.listen();
  }
  try {
    await node.start();
  } catch (err) {
    await node.stop(`start failed: ${(err as Error).message}`, 1);
    await status?.close();
    throw new UserError((err as Error).message, 'check that the app listens on $PORT (127.0.0.1) and starts within --start-timeout', ExitCode.unavailable);
  }
  return { node, status };
}

/** Run until the node stops by itself (STOP, idle, app exit) or the signal aborts. */
export async function runNode(opts: NodeOptions, signal: AbortSignal, stdin: NodeJS.ReadableStream = process.stdin): Promise<NodeExit> {
  const env = opts.env ?? process.env;
  if (env.ELASTIC_NODE_SPARE === '1') {
    // A spare (proxy edge --spare): loaded already, the app starts when the edge sends the id.
    const instance = await spareGo(stdin, signal);
    if (!instance) return { code: 0, reason: 'spare not used' };
    opts = { ...opts, env: { ...env, ELASTIC_NODE_SPARE: undefined, ELASTIC_INSTANCE: instance } };
  }
  const { node, status } = await startNode(opts);
  const onAbort = () => void node.stop('signal');
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();
  try {
    return await node.done;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await status?.close();
  }
}

export function timeoutOf(args: Record<string, unknown>): number {
  const t = Number(args.timeoutMs);
  return Number.isFinite(t) && t >= 0 ? Math.min(t, 3_600_000) : 30_000;
}

/** The instance id the edge writes to a spare's stdin; null at EOF, on a bad line or on abort. */
export function spareGo(stdin: NodeJS.ReadableStream, signal: AbortSignal): Promise<string | null> {
  return new Promise((resolve) => {
    let buf = '';
    const done = (v: string | null) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onEnd);
      signal.removeEventListener('abort', onEnd);
      stdin.pause();
      resolve(v);
    };
    const onData = (d: Buffer | string) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(nl <= 64 && isIdent(buf.slice(0, nl)) ? buf.slice(0, nl) : null);
      else if (buf.length > 64) done(null);
    };
    const onEnd = () => done(null);
    if (signal.aborted) return resolve(null);
    signal.addEventListener('abort', onEnd, { once: true });
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onEnd);
  });
}
