import type { Provider } from './provider.js';
import { diffBackends, type BackendChange, type BackendSet } from '../model/backend.js';
import { backoffMs, sleep } from '../runtime/clock.js';
import { describeError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';

export interface WatchUpdate {
  readonly backends: BackendSet;
  readonly changes: readonly BackendChange[];
  /** Why this list happened: `initial`, `event:start`, `resync`, `reconnected`... */
  readonly reason: string;
}

export interface WatchOptions {
  signal: AbortSignal;
  /** Coalesce a burst of hints into one re-list (default 15 ms: below the 50 ms latency goal). */
  debounceMs?: number;
  /** Full re-list at least this often, even with no hints (default: provider's, else 30 s). */
  resyncMs?: number;
  logger?: Logger;
}

/**
 * Level-triggered watching for any provider: list, diff against the last set, yield when
 * something changed (and always once at the start). Change hints only wake the loop; a lost
 * hint stream reconnects with backoff and resyncs; a failed list is retried with backoff and
 * the last good set stays in force meanwhile.
 */
export async function* watchBackends(provider: Provider, opts: WatchOptions): AsyncGenerator<WatchUpdate> {
  // Our own signal, so a consumer that stops iterating (break/return) also stops the hint stream.
  const inner = new AbortController();
  const stopInner = () => inner.abort(opts.signal.reason);
  if (opts.signal.aborted) stopInner();
  else opts.signal.addEventListener('abort', stopInner, { once: true });
  const { signal } = inner;
  const log = opts.logger ?? nullLogger;
  const debounceMs = opts.debounceMs ?? 15;
  const resyncMs = opts.resyncMs ?? provider.resyncMs ?? 30_000;

  let dirty: string | null = 'initial';
  let wake: (() => void) | null = null;
  const poke = (reason: string) => {
    dirty ??= reason;
    wake?.();
  };

  const hints = provider.changes ? consumeHints(provider, signal, log, poke) : Promise.resolve();

  let last: BackendSet | null = null;
  let listFailures = 0;
  try {
    while (!signal.aborted) {
      if (dirty === null) {
        const waited = await waitFor(resyncMs, signal, (w) => (wake = w));
        wake = null;
        if (signal.aborted) break;
        if (dirty === null && waited === 'timeout') dirty = 'resync';
        if (dirty === null) continue;
        if (debounceMs > 0 && dirty !== 'resync') await sleep(debounceMs, signal).catch(() => {});
      }
      const reason: string = dirty ?? 'resync';
      dirty = null;
      let current: BackendSet;
      try {
        current = await provider.list(signal);
        if (listFailures > 0) log.info(`${provider.name}: listing works again`, { after: listFailures });
        listFailures = 0;
      } catch (err) {
        if (signal.aborted) break;
        const delay = backoffMs(listFailures++, 500, 30_000);
        log.warn(`${provider.name}: list failed, keeping the last set`, { error: describeError(err), retryMs: delay });
        await sleep(delay, signal).catch(() => {});
        dirty ??= 'retry';
        continue;
      }
      const changes = last === null ? diffBackends([], current) : diffBackends(last, current);
      if (last === null || changes.length > 0) {
        last = current;
        yield { backends: current, changes, reason };
      }
    }
  } finally {
    wake = null;
    inner.abort();
    opts.signal.removeEventListener('abort', stopInner);
    await hints.catch(() => {});
  }
}

async function consumeHints(
  provider: Provider,
  signal: AbortSignal,
  log: Logger,
  poke: (reason: string) => void,
): Promise<void> {
  let attempt = 0;
  while (!signal.aborted) {
    let connected = false;
    try {
      for await (const hint of provider.changes!(signal)) {
        if (!connected) {
          connected = true;
          if (attempt > 0) {
            log.info(`${provider.name}: event stream reconnected, resyncing`, { attempts: attempt });
            poke('reconnected');
          }
          attempt = 0;
        }
        if (hint.reason !== 'connected') poke(hint.reason);
      }
      if (signal.aborted) return;
      log.warn(`${provider.name}: event stream ended, reconnecting`);
    } catch (err) {
      if (signal.aborted) return;
      log.warn(`${provider.name}: event stream lost, reconnecting`, { error: describeError(err) });
    }
    const delay = backoffMs(attempt++, 250, 10_000);
    await sleep(delay, signal).catch(() => {});
  }
}

function waitFor(ms: number, signal: AbortSignal, register: (wake: () => void) => void): Promise<'woken' | 'timeout'> {
  return new Promise((resolve) => {
    const t = setTimeout(() => done('timeout'), ms);
    const onAbort = () => done('woken');
    function done(how: 'woken' | 'timeout') {
      clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      resolve(how);
    }
    signal.addEventListener('abort', onAbort, { once: true });
    register(() => done('woken'));
  });
}
