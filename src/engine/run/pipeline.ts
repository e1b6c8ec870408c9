import { discoverWatch } from '../discover.js';
import { describeError, ExitCode, UserError } from '../errors.js';
import { HealthChecker } from '../health/checker.js';
import type { BackendSet } from '../model/backend.js';
import type { Logger } from '../runtime/logger.js';
import { SyncRunner } from '../runtime/runner.js';
import type { StateStore } from '../runtime/state-store.js';
import { judge, sameIds, unionOf } from './backends.js';
import type { RunConfig, ServiceConfig } from './config.js';
import type { RunApplier } from './appliers.js';
import type { MetricsRegistry } from './metrics.js';

/**
 * One config in force: a discovery watch per source, a health checker per service that has one,
 * per-service guardrails, and one coalescing SyncRunner per applier. A reload builds a new
 * Pipeline and stops the old one; the data plane is never torn down in between.
 */
export interface PipelineHooks {
  event(type: string, message: string, service?: string): void;
  /** Extra services (the ELB API's) with their backends, served by the HAProxy applier. */
  extraBackends(): Readonly<Record<string, BackendSet>>;
}

interface ServiceView {
  discovered: number;
  accepted: number;
  refused: string | null;
  healthChecked: boolean;
}

export class Pipeline {
  private readonly abort = new AbortController();
  private readonly latest = new Map<string, BackendSet>();
  private readonly checkers = new Map<string, HealthChecker>();
  private readonly accepted = new Map<string, BackendSet>();
  private readonly views = new Map<string, ServiceView>();
  readonly runners = new Map<string, SyncRunner>();
  private watches: Promise<void>[] = [];
  private persisted: Record<string, string[]> = {};

  constructor(
    readonly config: RunConfig,
    readonly appliers: readonly RunApplier[],
    private readonly ctx: { store: StateStore; logger: Logger; metrics: MetricsRegistry; hooks: PipelineHooks; once?: boolean },
  ) {}

  private get stateKey(): string {
    return `run-${this.config.name}`;
  }

  serviceView(name: string): ServiceView | undefined {
    return this.views.get(name);
  }

  acceptedOf(name: string): BackendSet {
    return this.accepted.get(name) ?? [];
  }

  async start(): Promise<void> {
    this.persisted = (await this.ctx.store.get<{ accepted?: Record<string, string[]> }>(this.stateKey))?.accepted ?? {};
    const m = this.ctx.metrics;
    const duration = m.histogram('elastic_sync_duration_seconds', 'time one applier sync took', ['applier']);
    const syncs = m.counter('elastic_syncs_total', 'applier syncs by result', ['applier', 'result']);
    for (const a of this.appliers) {
      const runner = new SyncRunner((reason) => this.syncApplier(a, reason), {
        minIntervalMs: this.config.sync.minIntervalMs,
        maxIntervalMs: this.config.sync.resyncMs,
        onError: (err) => {
          this.ctx.logger.error(`${a.name}: sync failed; the last good state keeps serving`, { error: describeError(err) });
          this.ctx.hooks.event('error', `${a.name}: ${describeError(err)}`);
        },
        onRun: ({ ms, ok }) => {
          duration.observe({ applier: a.name }, ms / 1000);
          syncs.inc({ applier: a.name, result: ok ? 'ok' : 'error' });
        },
      });
      this.runners.set(a.name, runner);
    }
    for (const s of this.config.services) {
      if (s.health) this.checkers.set(s.name, new HealthChecker(s.health, () => this.recompute(s, 'health')));
    }
    for (const source of Object.values(this.config.sources)) {
      this.watches.push(this.watch(source.name, source.discover));
    }
    if (Object.keys(this.config.sources).length === 0) for (const r of this.runners.values()) r.start();
  }

  private async watch(name: string, opts: RunConfig['sources'][string]['discover']): Promise<void> {
    const discovered = this.ctx.metrics.gauge('elastic_source_backends', 'backends a source discovers (before health and guardrails)', ['source']);
    try {
      for await (const u of discoverWatch({ ...opts, logger: this.ctx.logger.child(`source.${name}`) }, this.abort.signal)) {
        this.latest.set(name, u.backends);
        discovered.set({ source: name }, u.backends.length);
        for (const s of this.config.services) if (s.sources.includes(name)) this.recompute(s, `${name}: ${u.reason}`);
      }
    } catch (err) {
      if (this.abort.signal.aborted) return;
      this.ctx.logger.error(`source ${name} stopped`, { error: describeError(err) });
      this.ctx.hooks.event('error', `source ${name} stopped: ${describeError(err)}`);
    }
  }

  /** Every source of the service listed at least once: before that, nothing is applied (no empty first sync). */
  private ready(s: ServiceConfig): boolean {
    return s.sources.every((src) => this.latest.has(src));
  }

  private recompute(s: ServiceConfig, reason: string): void {
    if (!this.ready(s)) return;
    let next = unionOf(s.name, s.sources.map((src) => this.latest.get(src)));
    const checker = this.checkers.get(s.name);
    if (checker) {
      checker.setTargets(next);
      next = checker.apply(next);
    }
    const before = this.accepted.get(s.name);
    const view: ServiceView = { discovered: next.length, accepted: before?.length ?? 0, refused: null, healthChecked: Boolean(checker) };
    if (sameIds(before, next)) {
      this.views.set(s.name, { ...view, accepted: next.length });
      return;
    }
    const verdict = judge(s, next, before?.map((b) => b.id) ?? this.persisted[s.name]);
    if (!verdict.accepted) {
      const msg = verdict.refusals.map((r) => r.message).join('; ');
      const repeated = this.views.get(s.name)?.refused === msg;
      this.views.set(s.name, { ...view, refused: msg });
      if (!repeated) this.ctx.logger.warn(`refused: ${msg}; the last good backends keep serving`);
      this.ctx.hooks.event('refused', msg, s.name);
      for (const r of verdict.refusals) this.ctx.metrics.counter('elastic_refusals_total', 'backend sets refused by a guardrail', ['service', 'rule']).inc({ service: s.name, rule: r.rule });
      return;
    }
    this.accepted.set(s.name, verdict.backends);
    this.views.set(s.name, { ...view, accepted: verdict.backends.length });
    this.ctx.metrics.gauge('elastic_backends', 'backends served per service (after health and guardrails)', ['service']).set({ service: s.name }, verdict.backends.length);
    this.ctx.hooks.event('backends', `${verdict.backends.length} backend(s) (${reason})`, s.name);
    void this.persist();
    this.requestFor(s.name, reason);
  }

  private async persist(): Promise<void> {
    const accepted = Object.fromEntries([...this.accepted].map(([k, v]) => [k, v.map((b) => b.id)]));
    await this.ctx.store.put(this.stateKey, { v: 1, accepted, time: new Date().toISOString() }).catch((err) => this.ctx.logger.warn('state not saved', { error: describeError(err) }));
  }

  /** Ask every applier serving this service to sync. */
  requestFor(service: string, reason: string): void {
    if (this.ctx.once) return; // --once syncs each applier itself, after every source answered
    for (const a of this.appliers) if (a.services().includes(service)) this.runners.get(a.name)?.request(reason);
  }

  requestAll(reason: string): void {
    if (this.ctx.once) return;
    for (const r of this.runners.values()) r.request(reason);
  }

  /** The backends an applier gets: accepted sets of config services, plus the ELB services. */
  backendsFor(a: RunApplier): Record<string, BackendSet> | null {
    const extra = this.ctx.hooks.extraBackends();
    const out: Record<string, BackendSet> = {};
    for (const name of a.services()) {
      const cfg = this.config.services.find((s) => s.name === name);
      if (!cfg) {
        out[name] = extra[name] ?? [];
        continue;
      }
      const set = this.accepted.get(name);
      if (!set) return null; // not listed yet, or refused with nothing accepted before
      out[name] = set;
    }
    return out;
  }

  /** Syncs in flight: stop() waits for these (SyncRunner.idle() never resolves once stopped with a request pending). */
  private readonly inflight = new Set<Promise<unknown>>();

  private syncApplier(a: RunApplier, reason: string): Promise<void> {
    const p = this.syncApplierNow(a, reason);
    this.inflight.add(p);
    void p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return p;
  }

  /** Request one applier's runner (not under --once). */
  requestApplier(name: string, reason: string): void {
    if (!this.ctx.once) this.runners.get(name)?.request(reason);
  }

  private async syncApplierNow(a: RunApplier, reason: string): Promise<void> {
    const backends = this.backendsFor(a);
    if (!backends) return;
    const r = await a.sync(backends, reason);
    if (r.action !== 'none') this.ctx.hooks.event(r.action === 'refused' ? 'refused' : 'apply', `${a.name}: ${r.action} (${r.reason}; ${reason})`);
  }

  /**
   * `--once`: wait until every source has been listed (and health checks had time to rise), then
   * sync every applier directly, once. Returns what each did; a failure or a refusal throws.
   */
  async syncOnce(signal: AbortSignal, timeoutMs: number): Promise<Record<string, string>> {
    const end = Date.now() + timeoutMs;
    const settledChecks = () => this.config.services.every((s) => !s.health || this.accepted.has(s.name) || this.views.get(s.name)?.refused);
    while (!signal.aborted && Date.now() < end && !(this.config.services.every((s) => this.ready(s)) && settledChecks())) await new Promise((r) => setTimeout(r, 25));
    for (const r of this.runners.values()) r.stop();
    await Promise.allSettled([...this.inflight]);
    const out: Record<string, string> = {};
    for (const a of this.appliers) {
      const backends = this.backendsFor(a);
      if (!backends) {
        const why = a.services().map((n) => this.views.get(n)?.refused ?? (this.config.services.find((s) => s.name === n && !this.ready(s)) ? `${n}: a source did not answer` : null)).filter(Boolean).join('; ');
        throw new UserError(`${a.name}: nothing applied: ${why || 'no accepted backends'}`, 'the last good state keeps serving; see docs/run.md "Guardrails"', ExitCode.refused);
      }
      const r = await a.sync(backends, 'once');
      out[a.name] = `${r.action}: ${r.reason}`;
    }
    return out;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const c of this.checkers.values()) c.stop();
    for (const r of this.runners.values()) r.stop();
    await Promise.allSettled([...this.inflight]);
    await Promise.allSettled(this.watches);
  }
}
