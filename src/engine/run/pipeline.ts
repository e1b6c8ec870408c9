import { discoverOnce, discoverWatch } from '../discover.js';
import { describeError, ExitCode, UserError } from '../errors.js';
import { HealthChecker, type KnownHealth } from '../health/checker.js';
import { endpoint, type BackendSet } from '../model/backend.js';
import type { Logger } from '../runtime/logger.js';
import { SyncRunner } from '../runtime/runner.js';
import type { StateStore } from '../runtime/state-store.js';
import { judge, sameIds, storedBackend, unionOf } from './backends.js';
import type { RunConfig, ServiceConfig } from './config.js';
import type { RunApplier } from './appliers.js';
import type { MetricsRegistry } from './metrics.js';
import { isRunState, type RunState } from './run-state.js';

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
  /** Why nothing was decided yet (health checks have not given their verdicts). */
  waiting?: string;
}

/**
 * What one pipeline hands the next (a reload): health verdicts per service with the check they
 * came from, and the sets being served (so status and the guardrails start from them, not empty).
 */
export interface Carried {
  readonly health: Map<string, { check: string; verdicts: Map<string, KnownHealth> }>;
  readonly accepted: Map<string, BackendSet>;
}
export const nothingCarried = (): Carried => ({ health: new Map(), accepted: new Map() });

export class Pipeline {
  private readonly abort = new AbortController();
  private readonly latest = new Map<string, BackendSet>();
  private readonly checkers = new Map<string, HealthChecker>();
  private readonly accepted = new Map<string, BackendSet>();
  private readonly views = new Map<string, ServiceView>();
  readonly runners = new Map<string, SyncRunner>();
  private readonly watches = new Set<Promise<void>>();
  /** One per source, under the pipeline's: a retarget stops one source's watch, not the rest. */
  private readonly sourceAborts = new Map<string, AbortController>();
  private persisted: Map<string, BackendSet> = new Map();
  /** Services being recomputed (a guardrail check may probe): a newer request waits for the running one. */
  private readonly recomputing = new Map<string, { again: string | null }>();

  constructor(
    /** Switched only by retarget(), to a config that differs in its sources' definitions. */
    public config: RunConfig,
    readonly appliers: readonly RunApplier[],
    private readonly ctx: { store: StateStore; logger: Logger; metrics: MetricsRegistry; hooks: PipelineHooks; once?: boolean; carried?: Carried },
  ) {}

  /** What the next pipeline starts from (read before stop(): stopping forgets the verdicts). */
  carry(): Carried {
    const out = nothingCarried();
    for (const [name, c] of this.checkers) out.health.set(name, { check: JSON.stringify(this.config.services.find((s) => s.name === name)?.health), verdicts: c.verdicts() });
    for (const [name, set] of this.accepted) out.accepted.set(name, set);
    return out;
  }

  private get stateKey(): string {
    return `run-${this.config.name}`;
  }

  serviceView(name: string): ServiceView | undefined {
    return this.views.get(name);
  }

  /** Every backend of every service now: served or not, and its health (metrics). */
  backendStates(): Array<{ service: string; backend: string; health: string; up: boolean }> {
    const out: Array<{ service: string; backend: string; health: string; up: boolean }> = [];
    for (const s of this.config.services) {
      const served = new Set((this.accepted.get(s.name) ?? []).map((b) => b.id));
      const discovered = unionOf(s.name, s.sources.map((src) => this.latest.get(src)));
      const verdicts = this.checkers.get(s.name)?.verdicts();
      for (const b of [...discovered, ...(this.accepted.get(s.name) ?? []).filter((x) => !discovered.some((d) => d.id === x.id))]) {
        out.push({ service: s.name, backend: endpoint(b), health: verdicts?.get(b.id)?.health ?? b.health, up: served.has(b.id) });
      }
    }
    return out;
  }

  acceptedOf(name: string): BackendSet {
    return this.accepted.get(name) ?? [];
  }

  async start(): Promise<void> {
    for (const s of this.config.services) {
      const set = this.ctx.carried?.accepted.get(s.name);
      if (set) this.accepted.set(s.name, set);
    }
    const saved = await this.ctx.store.get(this.stateKey, isRunState);
    for (const [name, list] of Object.entries(saved?.backends ?? {})) this.persisted.set(name, list.map((b) => storedBackend(name, b, saved!.time)));
    const m = this.ctx.metrics;
    const duration = m.of('syncDuration');
    const syncs = m.of('syncs');
    const lastSync = m.of('lastSync');
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
          if (ok) lastSync.set({ applier: a.name }, Date.now() / 1000);
        },
      });
      // Present from the start at 0: a rate() or an alert on "no sync yet" needs the series.
      for (const result of ['ok', 'error']) syncs.inc({ applier: a.name, result }, 0);
      if (lastSync.get({ applier: a.name }) === undefined) lastSync.set({ applier: a.name }, 0);
      this.runners.set(a.name, runner);
      a.attach?.((reason) => runner.request(reason));
    }
    for (const s of this.config.services) {
      if (!s.health) continue;
      const checker = new HealthChecker(s.health, () => this.recompute(s, 'health'));
      // Start from what was known: the previous pipeline's verdicts (same check), else what was serving.
      const carried = this.ctx.carried?.health.get(s.name);
      if (carried && carried.check === JSON.stringify(s.health)) checker.seed(carried.verdicts);
      else checker.seed(new Map((this.persisted.get(s.name) ?? []).map((b) => [b.id, { address: b.address, port: b.port, health: 'healthy' as const }])));
      this.checkers.set(s.name, checker);
    }
    for (const source of Object.values(this.config.sources)) {
      m.of('sourceErrors').inc({ source: source.name }, 0);
      this.startSource(source.name, source.discover);
    }
    for (const s of this.config.services) for (const rule of ['min-backends', 'max-change']) m.of('refusals').inc({ service: s.name, rule }, 0);
    if (Object.keys(this.config.sources).length === 0) for (const r of this.runners.values()) r.start();
    // An applier serving no service (every mapping of it left the config) syncs once to clean up.
    for (const a of this.appliers) if (a.services().length === 0) this.requestApplier(a.name, 'no services left');
  }

  private startSource(name: string, opts: RunConfig['sources'][string]['discover']): void {
    this.sourceAborts.get(name)?.abort();
    const ac = new AbortController();
    this.sourceAborts.set(name, ac);
    const w = this.watch(name, opts, ac.signal);
    this.watches.add(w);
    void w.finally(() => this.watches.delete(w));
  }

  /**
   * Put `next` in force in place when it differs from the running config only in what its
   * sources list (a fleet version or a SIGHUP that changes backends): the changed sources are
   * listed again, everything else (appliers, runners, health checks, served sets) stays. Until
   * the new listing arrives the previous one keeps serving. False (nothing changed) when
   * anything else differs: the caller rebuilds the pipeline.
   */
  retarget(next: RunConfig): boolean {
    const rest = (c: RunConfig) => JSON.stringify({ ...c, file: '', hash: '', deploys: [], sources: Object.keys(c.sources).sort() });
    if (this.abort.signal.aborted || this.ctx.once || rest(next) !== rest(this.config)) return false;
    const changed = Object.values(next.sources).filter((src) => JSON.stringify(src) !== JSON.stringify(this.config.sources[src.name]));
    this.config = next;
    for (const src of changed) this.startSource(src.name, src.discover);
    // The config's hash changed: every applier syncs once more even if no set did (level-triggered).
    if (changed.length === 0) this.requestAll('reload');
    return true;
  }

  private async watch(name: string, opts: RunConfig['sources'][string]['discover'], signal: AbortSignal): Promise<void> {
    const discovered = this.ctx.metrics.of('sourceBackends');
    try {
      // A static list without a file never changes (a SIGHUP rebuilds the pipeline): list it once,
      // there is no event stream to follow (or to report as ended).
      if (opts.static && !opts.static.file && !opts.docker && !opts.ec2) {
        const { backends } = await discoverOnce({ ...opts, logger: this.ctx.logger.child(`source.${name}`) });
        if (signal.aborted) return; // retargeted meanwhile: the newer listing wins
        this.latest.set(name, backends);
        discovered.set({ source: name }, backends.length);
        for (const s of this.config.services) if (s.sources.includes(name)) this.recompute(s, `${name}: listed`);
        return;
      }
      for await (const u of discoverWatch({ ...opts, logger: this.ctx.logger.child(`source.${name}`) }, signal)) {
        if (signal.aborted) return;
        this.latest.set(name, u.backends);
        discovered.set({ source: name }, u.backends.length);
        for (const s of this.config.services) if (s.sources.includes(name)) this.recompute(s, `${name}: ${u.reason}`);
      }
    } catch (err) {
      if (signal.aborted) return;
      this.ctx.metrics.of('sourceErrors').inc({ source: name });
      this.ctx.logger.error(`source ${name} stopped`, { error: describeError(err) });
      this.ctx.hooks.event('error', `source ${name} stopped: ${describeError(err)}`);
    }
  }

  /** Every source of the service listed at least once: before that, nothing is applied (no empty first sync). */
  private ready(s: ServiceConfig): boolean {
    return s.sources.every((src) => this.latest.has(src));
  }

  /** Recompute a service; one at a time per service, the newest request runs after the running one. */
  private recompute(s: ServiceConfig, reason: string): void {
    const running = this.recomputing.get(s.name);
    if (running) {
      running.again = reason;
      return;
    }
    const entry = { again: reason as string | null };
    this.recomputing.set(s.name, entry);
    void (async () => {
      try {
        while (entry.again !== null && !this.abort.signal.aborted) {
          const r = entry.again;
          entry.again = null;
          await this.recomputeNow(s, r);
        }
      } catch (err) {
        this.ctx.logger.error(`${s.name}: recompute failed`, { error: describeError(err) });
      } finally {
        this.recomputing.delete(s.name);
      }
    })();
  }

  private async recomputeNow(s: ServiceConfig, reason: string): Promise<void> {
    if (!this.ready(s)) return;
    const discovered = unionOf(s.name, s.sources.map((src) => this.latest.get(src)));
    let next = discovered;
    const checker = this.checkers.get(s.name);
    if (checker) {
      checker.setTargets(discovered);
      next = checker.apply(discovered);
    }
    const before = this.accepted.get(s.name);
    const view: ServiceView = { discovered: discovered.length, accepted: before?.length ?? 0, refused: null, healthChecked: Boolean(checker) };
    if (sameIds(before, next)) {
      this.views.set(s.name, { ...view, accepted: next.length });
      // A set carried from the previous pipeline: the new config still has to reach the appliers once.
      if (!this.synced.has(s.name)) this.requestFor(s.name, reason);
      return;
    }
    // Health checks still deciding, and what passed so far is too few: wait for the verdicts
    // (no refusal, nothing logged); a restart or reload starts from the carried verdicts.
    if (checker && checker.pending() > 0 && next.length < s.guard.minBackends) {
      this.views.set(s.name, { ...view, waiting: `health checks: ${checker.pending()} backend(s) without a verdict yet` });
      return;
    }
    const served = new Set(next.map((b) => b.id));
    const failing = new Set(discovered.filter((b) => !served.has(b.id)).map((b) => b.id)); // failing their check: intended removals
    const udpOnly = s.mapImage?.protocol === 'udp' && !s.haproxy && !s.nginx && !s.varnish && !s.edge;
    const verdict = await judge(s, next, before ?? this.persisted.get(s.name), { intended: failing, isGone: udpOnly ? async () => false : undefined });
    if (this.abort.signal.aborted) return;
    const msg = verdict.refusals.map((r) => r.message).join('; ') || null;
    if (msg) {
      const repeated = this.views.get(s.name)?.refused === msg;
      if (!repeated) {
        this.ctx.logger.warn(`refused: ${msg}; ${verdict.accepted ? 'those backends keep serving, other changes are applied' : 'nothing is served until enough backends are found'}`);
        this.ctx.hooks.event('refused', msg, s.name);
        for (const r of verdict.refusals) this.ctx.metrics.of('refusals').inc({ service: s.name, rule: r.rule });
      }
    }
    if (!verdict.accepted) {
      this.views.set(s.name, { ...view, refused: msg });
      return;
    }
    this.views.set(s.name, { ...view, accepted: verdict.backends.length, refused: msg });
    if (sameIds(before, verdict.backends)) {
      if (!this.synced.has(s.name)) this.requestFor(s.name, reason);
      return;
    }
    this.accepted.set(s.name, verdict.backends);
    this.ctx.metrics.of('backends').set({ service: s.name }, verdict.backends.length);
    this.ctx.hooks.event('backends', `${verdict.backends.length} backend(s) (${reason})`, s.name);
    void this.persist();
    this.requestFor(s.name, reason);
  }

  /** Services whose appliers were asked to sync at least once by this pipeline. */
  private readonly synced = new Set<string>();

  private async persist(): Promise<void> {
    const accepted = Object.fromEntries([...this.accepted].map(([k, v]) => [k, v.map((b) => b.id)]));
    const backends = Object.fromEntries([...this.accepted].map(([k, v]) => [k, v.map((b) => ({ id: b.id, address: b.address, port: b.port }))]));
    await this.ctx.store.put<RunState>(this.stateKey, { v: 1, accepted, backends, time: new Date().toISOString() }).catch((err) => this.ctx.logger.warn('state not saved', { error: describeError(err) }));
  }

  /** Ask every applier serving this service to sync. */
  requestFor(service: string, reason: string): void {
    this.synced.add(service);
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

  /** Request one applier's runner and wait until it ran (a drain's config pass); --once: nothing runs. */
  async syncApplierAndWait(name: string, reason: string): Promise<void> {
    this.requestApplier(name, reason);
    await this.runners.get(name)?.idle();
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
    // Every health verdict in (rise/fall probes), every recompute done: then the one sync.
    const settledChecks = () => this.recomputing.size === 0 && [...this.checkers.values()].every((c) => c.pending() === 0);
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
    for (const ac of this.sourceAborts.values()) ac.abort();
    for (const c of this.checkers.values()) c.stop();
    for (const r of this.runners.values()) r.stop();
    await Promise.allSettled([...this.inflight]);
    await Promise.allSettled([...this.watches]);
  }
}
