import { describeError, ExitCode, UserError } from '../errors.js';
import type { Logger } from '../runtime/logger.js';
import type { RunApplier } from './appliers.js';
import type { RunConfig } from './config.js';
import type { MetricsRegistry } from './metrics.js';
import type { Carried } from './pipeline.js';

/** What a reload did; `hash` is the config in force afterwards. */
export interface ReloadResult {
  readonly result: 'applied' | 'unchanged' | 'refused' | 'failed';
  readonly hash: string;
  readonly error?: string;
}

/** The daemon as a reload sees it. */
export interface ReloadHost {
  config(): RunConfig;
  setConfig(c: RunConfig): void;
  /** The appliers of a config: resolved, nothing started, nothing running touched. */
  build(c: RunConfig): Promise<RunApplier[]>;
  /** Stop the running pipeline (the data plane keeps serving); its health verdicts. */
  stopPipeline(): Promise<Carried>;
  /** Listeners that differ from `from`, then the pipeline of the config in force. */
  start(from: RunConfig, appliers: RunApplier[], carried: Carried): Promise<void>;
  /**
   * Put `next` in force on the running pipeline when only its sources' definitions differ (no
   * stop and rebuild: the fast path for a fleet version that changes backends); false otherwise.
   */
  retarget?(next: RunConfig): boolean;
  /** After an unchanged (re-check) or applied reload. */
  unchanged(c: RunConfig): void;
  applied(c: RunConfig): void;
  event(type: string, message: string): void;
}

/**
 * Reloads, all or nothing, one at a time: a new config's appliers are built before anything
 * running stops; if starting it fails, the previous config is started again. The config hash
 * switches only on success. A failure is logged with its reason, counted
 * (`elastic_config_reloads_total{result="failed"}`) and shown in status; the daemon keeps
 * serving and following containers. Never rejects.
 */
export class Reloader {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: ReloadHost,
    private readonly metrics: MetricsRegistry,
    private readonly log: Logger,
  ) {}

  /** SIGHUP: `load` reads and validates the file; a bad one is refused and nothing changes. */
  reloadFrom(load: () => Promise<RunConfig>): Promise<ReloadResult> {
    return this.serialized(async () => {
      let next: RunConfig;
      try {
        next = await load();
      } catch (err) {
        return this.refused(err);
      }
      return this.apply(next);
    });
  }

  /** Put `next` (already validated) in force: SIGHUP, the status socket, a fleet store's update. */
  reloadWith(next: RunConfig): Promise<ReloadResult> {
    return this.serialized(() => this.apply(next));
  }

  private serialized(fn: () => Promise<ReloadResult>): Promise<ReloadResult> {
    const run = this.queue.then(fn).catch((err: unknown) => this.failed(err, 'unexpected'));
    this.queue = run;
    return run;
  }

  private count(result: ReloadResult['result']): void {
    this.metrics.of('configReloads').inc({ result });
  }

  private refused(err: unknown): ReloadResult {
    this.count('refused');
    this.log.error('new config refused; the old one keeps running (deploys unchanged)', { error: describeError(err) });
    this.host.event('refused', `config refused: ${describeError(err)}`);
    return { result: 'refused', hash: this.host.config().hash, error: describeError(err) };
  }

  private failed(err: unknown, what: string): ReloadResult {
    this.count('failed');
    this.log.error(`config reload failed; ${what}`, { error: describeError(err), hash: this.host.config().hash });
    this.host.event('error', `config reload failed: ${describeError(err)}; ${what}`);
    return { result: 'failed', hash: this.host.config().hash, error: describeError(err) };
  }

  private async apply(next: RunConfig): Promise<ReloadResult> {
    const h = this.host;
    const previous = h.config();
    if (next.name !== previous.name) return this.refused(new UserError(`name changed from ${previous.name} to ${next.name}`, 'a new name needs a restart', ExitCode.config));
    if (next.hash === previous.hash) {
      this.count('unchanged');
      h.unchanged(next);
      return { result: 'unchanged', hash: next.hash };
    }
    if (h.retarget?.(next)) {
      h.setConfig(next);
      return this.applied(next, true);
    }
    let appliers: RunApplier[];
    try {
      appliers = await h.build(next);
    } catch (err) {
      return this.failed(err, `nothing changed: config ${previous.hash} keeps running`);
    }
    const carried = await h.stopPipeline();
    h.setConfig(next);
    try {
      await h.start(previous, appliers, carried);
    } catch (err) {
      h.setConfig(previous);
      try {
        await h.stopPipeline();
        await h.start(next, await h.build(previous), carried);
      } catch (again) {
        return this.failed(err, `starting config ${previous.hash} again failed too: ${describeError(again)}`);
      }
      return this.failed(err, `config ${previous.hash} keeps running`);
    }
    return this.applied(next, false);
  }

  private applied(next: RunConfig, inPlace: boolean): ReloadResult {
    this.count('applied');
    this.log.info('config reloaded', { hash: next.hash, inPlace });
    this.host.event('reload', `config ${next.hash} in force${inPlace ? ' (sources re-listed in place)' : ''}`);
    this.host.applied(next);
    return { result: 'applied', hash: next.hash };
  }
}
