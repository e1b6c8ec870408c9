import { type Clock, systemClock, backoffMs } from './clock.js';
import { describeError } from '../errors.js';

/**
 * A coalescing sync runner, after kube-proxy's BoundedFrequencyRunner:
 * - `request()` asks for a run; any number of requests before the run starts make one run;
 * - runs are at least `minIntervalMs` apart (an event storm makes one apply per interval);
 * - a run happens at least every `maxIntervalMs` (periodic resync repairs drift), if set;
 * - a failed run is retried with backoff, and a failure always means a full resync next time
 *   (the sync function is level-triggered, so "retry" and "resync" are the same call).
 * Only one run is ever in flight.
 */
export interface RunnerOptions {
  minIntervalMs: number;
  maxIntervalMs?: number;
  retryBaseMs?: number;
  retryCapMs?: number;
  clock?: Clock;
  onError?: (err: unknown, attempt: number) => void;
  onRun?: (info: { ms: number; ok: boolean; reason: string }) => void;
}

export class SyncRunner {
  private readonly clock: Clock;
  private timer: unknown = null;
  private timerAt = Infinity;
  private running = false;
  private pendingReason: string | null = null;
  private lastStart = -Infinity;
  private failures = 0;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  runs = 0;
  lastError: string | null = null;

  constructor(
    private readonly sync: (reason: string) => Promise<void>,
    private readonly opts: RunnerOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  /** Start the periodic resync (if configured) and run once now. */
  start(): void {
    this.request('start');
  }

  request(reason = 'request'): void {
    if (this.stopped) return;
    this.pendingReason ??= reason;
    if (this.running) return; // picked up when the current run ends
    const earliest = this.lastStart + this.opts.minIntervalMs;
    this.schedule(Math.max(0, earliest - this.clock.now()));
  }

  /** No more runs. A run in flight finishes; idle() waiters resolve when it does (or now). */
  stop(): void {
    this.stopped = true;
    this.pendingReason = null;
    this.cancelTimer();
    if (!this.running) this.notifyIdle();
  }

  /** Resolves when no run is in flight and none is pending (tests, graceful shutdown). */
  idle(): Promise<void> {
    if (!this.running && (this.pendingReason === null || this.stopped)) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private schedule(delay: number): void {
    const at = this.clock.now() + delay;
    if (this.timer !== null && this.timerAt <= at) return;
    this.cancelTimer();
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      void this.tick();
    }, delay);
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.running) return;
    const reason = this.pendingReason ?? 'resync';
    this.pendingReason = null;
    this.running = true;
    this.lastStart = this.clock.now();
    let ok = true;
    try {
      await this.sync(reason);
      this.failures = 0;
      this.lastError = null;
    } catch (err) {
      ok = false;
      this.lastError = describeError(err);
      this.opts.onError?.(err, this.failures);
      const delay = Math.max(
        this.opts.minIntervalMs,
        backoffMs(this.failures, this.opts.retryBaseMs ?? 1000, this.opts.retryCapMs ?? 30_000),
      );
      this.failures++;
      this.pendingReason ??= 'retry';
      this.running = false;
      this.runs++;
      this.opts.onRun?.({ ms: this.clock.now() - this.lastStart, ok, reason });
      if (this.stopped) {
        this.pendingReason = null;
        this.notifyIdle();
      } else this.schedule(delay);
      return;
    }
    this.running = false;
    this.runs++;
    this.opts.onRun?.({ ms: this.clock.now() - this.lastStart, ok, reason });
    if (this.stopped) {
      this.pendingReason = null;
      return this.notifyIdle();
    }
    if (this.pendingReason !== null) {
      this.schedule(Math.max(0, this.lastStart + this.opts.minIntervalMs - this.clock.now()));
    } else {
      this.notifyIdle();
      if (this.opts.maxIntervalMs) {
        const at = this.lastStart + this.opts.maxIntervalMs;
        this.pendingReason = null;
        this.scheduleResync(Math.max(0, at - this.clock.now()));
      }
    }
  }

  private scheduleResync(delay: number): void {
    this.schedule(delay);
  }

  private notifyIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}
