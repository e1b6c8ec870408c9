import type { BackendSet } from '../model/backend.js';

/**
 * The provider interface: one folder per source (docker/, ec2/, static/) implements it.
 *
 * - `list()` returns the full current set (level-triggered: callers never apply deltas).
 * - `changes()` yields a hint each time something *may* have changed (a Docker event, a file
 *   write, a poll tick). It carries no data: the watcher re-lists. It ends when the signal aborts,
 *   and throws when the source is lost (the watcher reconnects with backoff).
 *
 * `watchBackends()` (watch.ts) turns any provider into a stream of deduplicated backend sets
 * with debounce, periodic resync and reconnect; providers never implement that themselves.
 */
export interface Provider {
  /** Short name for logs and status: `docker`, `ec2`, `static`. */
  readonly name: string;
  list(signal?: AbortSignal): Promise<BackendSet>;
  changes?(signal: AbortSignal): AsyncIterable<ChangeHint>;
  /** Default resync period for this source (EC2 polls; Docker resyncs rarely). */
  readonly resyncMs?: number;
  close?(): Promise<void>;
}

export interface ChangeHint {
  /** Why: `event:start`, `poll`, `file`, `connected`... for logs only. */
  readonly reason: string;
}
