import type { BackendSet } from '../model/backend.js';
import { ExitCode, UserError, describeError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import type { StateStore } from '../runtime/state-store.js';
import type { Applier, ApplyOutcome, ApplyPlan, DesiredRender } from './applier.js';
import { semanticDiff, textDiff, type SemanticDiff } from './diff.js';
import { CONFIG_MODE, VCL_MODE, discardStaged, readIfExists, restore, stage, swapIn, type LiveFile } from './files.js';
import { checkGuardrails, type Guardrails, type Refusal } from './guardrails.js';
import { inMaint, type Backend } from '../model/backend.js';
import { appliedSlots, hashText, type HaproxyApplied } from './haproxy/plan.js';
import { WEIGHT_LABEL, backendWeight, buildTemplateData, skeletonOf, type ServiceSpec, type SlotMap } from './model.js';
import { printable } from '../model/validate.js';
import type { CompiledTemplate } from './template.js';
import { validateConfig } from './validate.js';
import { assertOursToBind } from './binds.js';
import type { CertSet } from './tls/certs.js';
import type { TlsOptions } from './tls/tls-data.js';
import type { TlsCerts } from './tls/rotation.js';

/**
 * One render pass, level-triggered: backends in -> guardrails -> template -> skip if unchanged ->
 * validate the staged file -> atomic swap (keeping the last good file) -> apply -> verify ->
 * persist. On a failed apply the previous file is put back and put in force again.
 */
export interface RenderState {
  readonly v: 1;
  readonly proxy: string;
  readonly output: string;
  readonly applied: HaproxyApplied;
  readonly backends: Readonly<Record<string, readonly string[]>>;
  readonly time: string;
}

/** The backends last applied to a service, from its slots (what the guardrails compare with). */
function previousBackends(state: RenderState, service: string): Backend[] | undefined {
  const slots = state.applied.slots[service];
  if (!slots) return undefined;
  return slots.flatMap((s) => (s ? [{ id: s.id, name: s.id, service, source: 'static' as const, address: s.address, port: s.port, state: 'running' as const, health: 'none' as const, labels: {}, since: state.time }] : []));
}

export type RenderAction = ApplyOutcome['action'] | 'refused' | 'checked' | 'dry-run';

export interface RenderResult {
  readonly v: 1;
  readonly instance: string;
  readonly proxy: string;
  readonly output: string;
  readonly action: RenderAction;
  readonly reason: string;
  readonly ops: number;
  readonly ms: number;
  readonly backends: Readonly<Record<string, number>>;
  readonly refusals: readonly Refusal[];
  readonly diff?: SemanticDiff;
  readonly textDiff?: string;
}

export interface RendererOptions {
  instance: string;
  output: string;
  specs: readonly ServiceSpec[];
  template: CompiledTemplate;
  applier: Applier;
  guard: Guardrails;
  store: StateStore;
  logger?: Logger;
  validateBin?: string;
  /** A bind routed even with no service on it (render --routes-from-labels). */
  frontDoor?: { readonly address: string; readonly port: number };
  /** The TLS bind and its current certificates (tls/certs.ts), read at every pass. */
  tls?: { readonly options: TlsOptions; readonly certs: () => CertSet | undefined; readonly manager: TlsCerts };
  /** The drains, owned by whoever rebuilds renderers (a new service set must not undo a drain). */
  drains?: Drains;
}

/** Backends a drain request took out (or is taking out) of rotation, by backend id. */
export interface Drains {
  /** Out of rotation: kept out until they leave discovery. */
  readonly drained: Set<string>;
  /** Draining in place (HAProxy, weight 0) until their sessions end: frontends/drain.ts. */
  readonly draining: Set<string>;
}

export const newDrains = (): Drains => ({ drained: new Set(), draining: new Set() });

export interface Counters {
  renders: number;
  reloads: number;
  runtimeOps: number;
  starts: number;
  refusals: number;
  failures: number;
  lastRender: { time: string; action: RenderAction; reason: string } | null;
  lastApply: { time: string; action: string; reason: string; ms: number } | null;
  lastRefusal: { time: string; message: string } | null;
  lastError: { time: string; message: string } | null;
}

export class Renderer {
  readonly counters: Counters = { renders: 0, reloads: 0, runtimeOps: 0, starts: 0, refusals: 0, failures: 0, lastRender: null, lastApply: null, lastRefusal: null, lastError: null };
  /** Drains (see Drains): the same sets across the renderers `elastic run` and labels rebuild. */
  readonly drained: Set<string>;
  readonly draining: Set<string>;
  /** Drained or in maintenance (elastic.maint=true) in the last pass: their slots stay reserved. */
  private out: ReadonlySet<string>;
  /** Draining in the last pass (a snapshot: a drain request between passes waits for the next). */
  private weightZero: ReadonlySet<string> = new Set();
  private readonly log: Logger;

  constructor(readonly opts: RendererOptions) {
    const drains = opts.drains ?? newDrains();
    this.drained = drains.drained;
    this.draining = drains.draining;
    this.out = this.drained;
    this.log = opts.logger ?? nullLogger;
  }

  get stateKey(): string {
    return `render-${this.opts.instance}`;
  }

  async state(): Promise<RenderState | undefined> {
    const s = await this.opts.store.get<RenderState>(this.stateKey);
    return s && s.v === 1 && s.output === this.opts.output && s.proxy === this.opts.applier.proxy ? s : undefined;
  }

  /** Build the desired render (pure apart from reading the last slot map). */
  desired(backends: Readonly<Record<string, BackendSet>>, state: RenderState | undefined): DesiredRender {
    const previousSlots: SlotMap = Object.fromEntries(Object.entries(state?.applied.slots ?? {}).map(([k, v]) => [k, v.map((s) => s?.id ?? null)]));
    const { data } = buildTemplateData({ instance: this.opts.instance, proxy: this.opts.applier.proxy, specs: this.opts.specs, backends, previousSlots, reserved: this.out, draining: this.weightZero, paths: this.opts.applier.paths, frontDoor: this.opts.frontDoor, tls: this.tlsInput() });
    const text = this.opts.template(data);
    const skeleton = this.opts.applier.proxy === 'haproxy' ? this.opts.template(skeletonOf(data)) : text;
    return { text, configHash: hashText(text), skeletonHash: hashText(skeleton), slots: appliedSlots(data) };
  }

  private tlsInput() {
    const certs = this.opts.tls?.certs();
    return this.opts.tls && certs ? { options: this.opts.tls.options, certs } : undefined;
  }

  async sync(discovered: Readonly<Record<string, BackendSet>>, mode: { dryRun?: boolean; check?: boolean; throwOnRefusal?: boolean } = {}): Promise<RenderResult> {
    const t0 = performance.now();
    const { output, applier } = this.opts;
    const state = await this.state();
    for (const set of [this.drained, this.draining]) for (const id of set) if (!Object.values(discovered).some((list) => list.some((b) => b.id === id))) set.delete(id);
    // Out: drained through the status socket, or labelled elastic.maint=true (an intended removal too).
    const out = new Set([...this.drained, ...Object.values(discovered).flatMap((set) => set.filter(inMaint).map((b) => b.id))]);
    this.out = out;
    this.weightZero = new Set(this.draining);
    const fresh = Object.fromEntries(this.opts.specs.map((s) => [s.name, (discovered[s.name] ?? []).filter((b) => !out.has(b.id))]));
    // One guardrail definition (guardrails.ts): drained and gone backends are intended removals;
    // a refusal keeps only the suspicious removals serving, additions go through.
    const refusals: Refusal[] = [];
    const backends: Record<string, BackendSet> = {};
    let blocked = false;
    for (const spec of this.opts.specs) {
      const previous = state ? previousBackends(state, spec.name) : undefined;
      const v = await checkGuardrails(spec.name, previous, fresh[spec.name] ?? [], this.opts.guard, { intended: out });
      refusals.push(...v.refusals);
      blocked ||= v.blocked;
      backends[spec.name] = v.backends;
    }
    this.warnBadWeights(backends);
    const ids = Object.fromEntries(Object.entries(backends).map(([k, v]) => [k, v.map((b) => b.id)]));
    const counts = Object.fromEntries(Object.entries(ids).map(([k, v]) => [k, v.length]));
    const result = (action: RenderAction, reason: string, extra: Partial<RenderResult> = {}): RenderResult => {
      const r: RenderResult = { v: 1, instance: this.opts.instance, proxy: applier.proxy, output, action, reason, ops: 0, ms: Math.round(performance.now() - t0), backends: counts, refusals: [], ...extra };
      this.counters.renders++;
      this.counters.lastRender = { time: new Date().toISOString(), action, reason };
      return r;
    };

    // --dry-run refuses exactly as the real run would (it only skips the bookkeeping).
    if (refusals.length > 0 && !mode.check) {
      const message = refusals.map((r) => r.message).join('; ');
      if (!mode.dryRun) {
        this.counters.refusals++;
        this.counters.lastRefusal = { time: new Date().toISOString(), message };
        this.log.warn(`refused: ${message}; those backends keep serving, other changes are applied`);
      }
      if (mode.throwOnRefusal) {
        throw new UserError(`${mode.dryRun ? 'dry run: would be refused' : 'refused'}: ${message}`, refusals.some((r) => r.rule === 'max-change') ? 'if this is intended, re-run with --force (or raise --max-change)' : 'the last good config keeps serving; lower --min-backends if an empty service is intended', ExitCode.refused);
      }
      // Nothing may be applied yet (a first sync with too few backends): the last good config serves.
      if (blocked) return result('refused', message, { refusals });
    }

    const desired = this.desired(backends, state);
    const live = await readIfExists(output);
    const last = state && live !== null && hashText(live) === state.applied.configHash ? state.applied : undefined;
    const plan = applier.plan(last, desired);

    if (mode.dryRun) {
      return result('dry-run', plan.reason, { refusals, diff: semanticDiff(last ? state?.backends : undefined, ids, plan), textDiff: textDiff(live ?? '', desired.text) });
    }
    const alive = !applier.alive || mode.check || (await applier.alive());
    if (plan.action === 'none' && alive && !mode.check) return result('none', 'unchanged');
    let outcome: ApplyOutcome;
    // Membership only: the runtime API checks each command itself and the file's structure is
    // the validated live one, so serve first (milliseconds) and persist the file after.
    const fast = plan.action === 'runtime' && alive && last && !mode.check ? await this.applyRuntimeFirst(plan, desired, last) : null;
    if (fast) outcome = fast;
    else {
      await assertOursToBind(applier, desired.text);
      await this.stageAndValidate(desired.text);
      if (mode.check) {
        await discardStaged(output);
        return result('checked', `${applier.proxy} accepts the rendered config`);
      }
      const previous = await swapIn(output);
      const slow = plan.action === 'runtime' ? { action: 'reload' as const, ops: [], reason: `runtime change failed; ${plan.reason}` } : plan;
      outcome = await this.applyOrRestore(slow, desired, previous, state);
    }
    await this.opts.store.put<RenderState>(this.stateKey, { v: 1, proxy: applier.proxy, output, applied: { configHash: desired.configHash, skeletonHash: desired.skeletonHash, slots: desired.slots }, backends: ids, time: new Date().toISOString() });
    if (outcome.action === 'reload') this.counters.reloads++;
    if (outcome.action === 'start') this.counters.starts++;
    this.counters.runtimeOps += outcome.ops;
    this.counters.lastApply = { time: new Date().toISOString(), action: outcome.action, reason: outcome.reason, ms: outcome.ms };
    this.log.info(`applied: ${outcome.action}`, { reason: outcome.reason, ops: outcome.ops, ms: outcome.ms });
    return result(outcome.action, outcome.reason, { ops: outcome.ops });
  }

  private readonly weightWarned = new Set<string>();

  /** A weight label that is not 0-256 is served with weight 1: say so once per backend and value. */
  private warnBadWeights(backends: Readonly<Record<string, BackendSet>>): void {
    for (const b of Object.values(backends).flat()) {
      const text = b.labels[WEIGHT_LABEL];
      if (text === undefined || (/^\d{1,3}$/.test(text) && backendWeight(b) === Number(text)) || this.weightWarned.has(`${b.id}=${text}`)) continue;
      this.weightWarned.add(`${b.id}=${text}`);
      this.log.warn(`backend ${printable(b.id, 80)}: label ${WEIGHT_LABEL}="${printable(text, 20)}" is not a weight 0-256; using 1`);
    }
  }

  private async stageAndValidate(text: string): Promise<void> {
    const staged = await stage(this.opts.output, text, this.opts.applier.proxy === 'varnish' ? VCL_MODE : CONFIG_MODE);
    try {
      await validateConfig(this.opts.applier.proxy, staged, text, { displayPath: this.opts.output, bin: this.opts.validateBin });
    } catch (err) {
      await discardStaged(this.opts.output);
      throw err;
    }
  }

  /**
   * Runtime ops first, then the file (validated, swapped). A refused runtime change falls back to
   * the validated reload path; a refused file undoes the runtime ops. null: fall back.
   */
  private async applyRuntimeFirst(plan: ApplyPlan, desired: DesiredRender, last: HaproxyApplied): Promise<ApplyOutcome | null> {
    const { applier } = this.opts;
    let outcome: ApplyOutcome;
    try {
      outcome = await applier.apply(plan, desired);
    } catch (err) {
      this.log.warn('runtime API change failed; reloading with the validated file instead', { error: describeError(err) });
      return null;
    }
    try {
      await this.stageAndValidate(desired.text);
    } catch (err) {
      const undo = applier.plan(desired, { ...last, configHash: `${last.configHash}-undo`, text: '' });
      await applier.apply(undo, { ...last, text: '' }).catch((e) => this.log.error('undoing runtime changes failed', { error: describeError(e) }));
      throw err;
    }
    await swapIn(this.opts.output);
    return outcome;
  }

  private async applyOrRestore(plan: ApplyPlan, desired: DesiredRender, previous: LiveFile | null, state: RenderState | undefined): Promise<ApplyOutcome> {
    const { output, applier } = this.opts;
    try {
      return await applier.apply(plan, desired);
    } catch (err) {
      this.counters.failures++;
      this.counters.lastError = { time: new Date().toISOString(), message: describeError(err) };
      await restore(output, previous);
      if (previous !== null && state && plan.action !== 'none') {
        // Put the restored file back in force; its state is the last applied one.
        await applier.apply({ action: 'reload', ops: [], reason: 'restore last good config' }, { ...state.applied, text: previous.text }).catch((e) => this.log.error('restoring the last good config failed', { error: describeError(e) }));
      }
      const msg = describeError(err);
      const undone = previous === null ? 'the new file was removed (there was no previous config)' : 'last good config restored';
      throw new UserError(`apply failed, ${undone}: ${err instanceof UserError ? err.message : msg}`, err instanceof UserError ? err.hint : undefined, err instanceof UserError ? err.exitCode : ExitCode.failure, { cause: err });
    }
  }
}
