import { loadConfig, configSummary } from './run/config.js';
import { RunDaemon, type DaemonOptions } from './run/daemon.js';

/**
 * `elastic run` as engine entry points: validate a config (--check), sync once (--once), or run
 * the daemon until the signal aborts, re-reading the config on every `reload()` (SIGHUP).
 */
export { RunDaemon, type DaemonOptions } from './run/daemon.js';
export { ConfigError, loadConfig, parseConfig, type RunConfig } from './run/config.js';

export interface CheckResult {
  readonly v: 1;
  readonly ok: true;
  readonly config: Record<string, unknown>;
}

/** Validate only: the file, its references and its secrets. Throws a ConfigError (exit 5). */
export async function checkRunConfig(file: string, env?: NodeJS.ProcessEnv): Promise<CheckResult> {
  const c = await loadConfig(file, { env });
  return { v: 1, ok: true, config: configSummary(c) };
}

export interface OnceResult {
  readonly v: 1;
  readonly config: string;
  readonly appliers: Record<string, string>;
  /** The config's deploys, reconciled before the sync (state ok or failed, with the error). */
  readonly deploys: ReturnType<RunDaemon['deployStatus']>;
}

export async function runOnce(opts: DaemonOptions, signal: AbortSignal, timeoutMs?: number): Promise<OnceResult> {
  const d = new RunDaemon({ ...opts, once: true });
  await d.start();
  const appliers = await d.runOnce(signal, timeoutMs);
  return { v: 1, config: d.current.hash, appliers, deploys: d.deployStatus() };
}

/**
 * Run until `signal` aborts; `onStarted` gets the daemon (for reload on SIGHUP). A timer keeps the
 * process alive whatever a reload closes: without it, a moment with no open handle (every
 * listener of a config replaced) ends Node with exit 13 and no word said.
 */
export async function runDaemon(opts: DaemonOptions, signal: AbortSignal, onStarted?: (d: RunDaemon) => void): Promise<void> {
  const d = new RunDaemon(opts);
  await d.start();
  const alive = setInterval(() => {}, 1 << 30);
  try {
    onStarted?.(d);
    if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
  } finally {
    clearInterval(alive);
  }
  await d.stop();
}
