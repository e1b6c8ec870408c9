import { UserError, ExitCode } from './engine/errors.js';
import { printable } from './engine/model/validate.js';
import { createLogger } from './engine/runtime/logger.js';
import { runNode, type NodeOptions } from './engine/proxy-node.js';

/**
 * `elastic proxy node` without oclif, for the cold start: an edge starts one when a client waits,
 * and loading the whole CLI was most of the elastic overhead in that wait. bin/run.js comes here
 * for `proxy node ... -- APP`; anything this small parser does not take exactly as the command
 * would (--help, --json, an unknown flag, a value out of range) returns false and the oclif
 * command runs instead, with its own messages. The flags are those of src/commands/proxy/node.ts.
 */
type Kind = 'string' | 'int' | 'seconds' | 'level' | 'bool';
const FLAGS: Record<string, { key: keyof NodeOptions | 'logLevel' | 'logJson'; kind: Kind; min?: number; max?: number }> = {
  edge: { key: 'edge', kind: 'string' },
  route: { key: 'route', kind: 'string' },
  concurrency: { key: 'concurrency', kind: 'int', min: 1, max: 4096 },
  'token-file': { key: 'tokenFile', kind: 'string' },
  'app-host': { key: 'appHost', kind: 'string' },
  'app-port': { key: 'appPort', kind: 'int', min: 0, max: 65535 },
  'start-timeout': { key: 'startTimeoutMs', kind: 'seconds' },
  'idle-timeout': { key: 'idleTimeoutMs', kind: 'seconds' },
  'orphan-timeout': { key: 'orphanTimeoutMs', kind: 'seconds' },
  grace: { key: 'graceMs', kind: 'seconds' },
  'log-level': { key: 'logLevel', kind: 'level' },
  'log-json': { key: 'logJson', kind: 'bool' },
};

/** The options, or null when the argv is not one this parser takes as oclif would. */
export function parseNodeArgv(argv: readonly string[]): (Partial<NodeOptions> & { logLevel?: string; logJson?: boolean; command: string[] }) | null {
  const dash = argv.indexOf('--');
  if (dash < 0 || dash === argv.length - 1) return null;
  const out: Record<string, unknown> = { command: argv.slice(dash + 1) };
  for (let i = 0; i < dash; i++) {
    let name = argv[i]!;
    let value: string | undefined;
    if (name === '-c') name = '--concurrency';
    if (!name.startsWith('--')) return null;
    const eq = name.indexOf('=');
    if (eq > 0) [name, value] = [name.slice(0, eq), name.slice(eq + 1)];
    const f = FLAGS[name.slice(2)];
    if (!f || out[f.key] !== undefined) return null;
    if (f.kind === 'bool') {
      if (value !== undefined) return null;
      out[f.key] = true;
      continue;
    }
    value ??= i + 1 < dash ? argv[++i] : undefined;
    if (value === undefined || value.startsWith('-')) return null;
    if (f.kind === 'string') out[f.key] = value;
    else if (f.kind === 'level') {
      if (!['debug', 'info', 'warn', 'error'].includes(value)) return null;
      out[f.key] = value;
    } else if (f.kind === 'int') {
      const n = /^\d{1,7}$/.test(value) ? Number(value) : NaN;
      if (!(n >= f.min! && n <= f.max!)) return null;
      out[f.key] = n;
    } else {
      const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
      if (!(n <= 86_400)) return null;
      out[f.key] = Math.round(n * 1000);
    }
  }
  return out as ReturnType<typeof parseNodeArgv>;
}

/** Run the node; false when the argv is for the oclif command. Sets process.exitCode like it. */
export async function fastNode(argv: readonly string[]): Promise<boolean> {
  const opts = parseNodeArgv(argv);
  if (!opts) return false;
  const { logLevel, logJson, ...nodeOpts } = opts;
  const logger = createLogger({ level: (logLevel as 'info') ?? 'info', json: logJson, component: 'node' });
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort(new Error(sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const exit = await runNode({ ...nodeOpts, appPort: nodeOpts.appPort || undefined, logger }, abort.signal);
    logger.info('node stopped', { reason: exit.reason });
    if (exit.code !== 0) process.exitCode = exit.code;
  } catch (err) {
    const e = err as Error;
    if (e instanceof UserError) {
      process.stderr.write(`error: ${printable(e.message, 400)}${e.hint ? `. try: ${printable(e.hint, 300)}` : ''}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`error: elastic hit an unexpected error: ${printable(e.message, 400)}. try: re-run with --debug for the stack trace, and report it\n`);
      process.exitCode = ExitCode.failure;
    }
  }
  return true;
}
