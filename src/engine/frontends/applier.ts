import type { ProxyKind } from './model.js';
import type { HaproxyApplied, RuntimeOp } from './haproxy/plan.js';
import type { ServerStat } from './haproxy/runtime.js';

/**
 * What `render` needs from a proxy: the paths its template must print, a plan from the last
 * applied state to the desired one, an apply that puts the (already validated and swapped-in)
 * config in force and verifies it, and optionally live stats and drain.
 */
export interface DesiredRender extends HaproxyApplied {
  readonly text: string;
}

export interface ApplyPlan {
  readonly action: 'none' | 'runtime' | 'reload';
  readonly ops: readonly RuntimeOp[];
  readonly reason: string;
}

export interface ApplyOutcome {
  /** What actually happened: a runtime change can fall back to a reload; a dead proxy is started. */
  readonly action: 'none' | 'runtime' | 'reload' | 'start' | 'written';
  readonly ops: number;
  readonly reason: string;
  readonly ms: number;
}

export interface Applier {
  readonly proxy: ProxyKind;
  /** Paths the template prints (stats socket, pid file...), passed as `paths` in the data. */
  readonly paths: Readonly<Record<string, string>>;
  plan(last: HaproxyApplied | undefined, desired: DesiredRender): ApplyPlan;
  /** Put the live file in force; throws (UserError) when it cannot or when verification fails. */
  apply(plan: ApplyPlan, desired: DesiredRender): Promise<ApplyOutcome>;
  /** Is the proxy running (for the watch loop's restart)? undefined: not ours to know. */
  alive?(): Promise<boolean>;
  /**
   * The pids of the proxy process this applier puts configs in force for (its workers are
   * found from them): a listening socket they hold is ours. [] when it is not running; null when
   * it cannot be told (a custom reload command), and binds are then not checked.
   */
  owners?(): Promise<readonly number[] | null>;
  /** Start it from the live file (render --start, and restarts under --watch). */
  start?(): Promise<void>;
  stats?(): Promise<ServerStat[]>;
  /**
   * Wait until one slot has no sessions (or time runs out) and answer how many remain. It only
   * reads: the drain itself (weight 0, then out) is desired state, applied by passes (drain.ts).
   */
  waitSessions?(service: string, server: string, timeoutMs: number, signal?: AbortSignal): Promise<number>;
}

/** Plan for proxies that reload on every change (nginx, Varnish, a custom command). */
export function reloadPlan(last: HaproxyApplied | undefined, desired: DesiredRender): ApplyPlan {
  if (!last) return { action: 'reload', ops: [], reason: 'no applied state (first apply)' };
  if (last.configHash === desired.configHash) return { action: 'none', ops: [], reason: 'unchanged' };
  return { action: 'reload', ops: [], reason: 'config changed' };
}
