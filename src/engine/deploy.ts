import { describeError, ExitCode, UserError } from './errors.js';
import { nullLogger, type Logger } from './runtime/logger.js';
import { FileStateStore, type StateStore } from './runtime/state-store.js';
import { listStatusSockets, requestStatus, StatusServer, type ActionHandler, type Snapshot } from './runtime/status.js';
import { decide, initialScalerState, type AutoscaleSpec, type ScalerState } from './deploy/autoscale.js';
import { DeployDocker } from './deploy/docker-ops.js';
import { sampleLoad } from './deploy/metrics.js';
import { simulatePlan, type Replica, type Step } from './deploy/plan.js';
import { converge, type ExecutorOptions, type RolloutEvent } from './deploy/rollout.js';
import { checkReplicas, checkService, resolveBudget, revisionOf, type DeploySpec } from './deploy/spec.js';
import { loadState, saveState, serviceOfKey, type DeployState, type RevisionRecord } from './deploy/state.js';
import { DeployView, type ServiceView } from './deploy/view.js';

/**
 * `elastic deploy` as engine functions: up (create / reconcile / roll out), scale, rollback, rm,
 * status, and the long-running form (reconcile loop + autoscaler + status socket). Commands call
 * exactly one of these. Docker is reached only through deploy/docker-ops.ts.
 */
export interface DeployContext {
  readonly host?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly store?: StateStore;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: RolloutEvent) => void;
  /** Status-socket directory (ELASTIC_RUN_DIR by default). */
  readonly runDir?: string;
  /** Before every container change; rejects to prevent it (a fleet host that no longer leads). */
  readonly guard?: (what: string) => Promise<void>;
  /** A fleet leader: the other hosts drain an old replica too, and say so (rollout.ts). */
  readonly fleetDrain?: ExecutorOptions['fleetDrain'];
}

export interface DeployResult {
  readonly v: 1;
  readonly service: string;
  readonly revision: string;
  readonly previous: string | null;
  readonly phase: string;
  readonly message: string | null;
  readonly desired: number;
  readonly created: number;
  readonly removed: number;
  readonly failed: number;
  readonly rolledBack: boolean;
  readonly replicas: ServiceView['replicas'];
  /** --dry-run only: the steps that would run. */
  readonly plan?: ReadonlyArray<{ note: string; create: number[]; remove: Array<{ name: string; revision: string; reason: string }> }>;
}

interface Session {
  ops: DeployDocker;
  store: StateStore;
  log: Logger;
}

function session(ctx: DeployContext): Session {
  const ops = new DeployDocker(ctx.host, ctx.env);
  ops.guard = ctx.guard;
  return { ops, store: ctx.store ?? new FileStateStore(), log: ctx.logger ?? nullLogger };
}

const noDeploy = (service: string) =>
  new UserError(`no deploy named "${service}" here`, `create it first: elastic deploy IMAGE --name ${service} --replicas N (see elastic deploy status)`, ExitCode.usage);

/** Serve the status socket for the run; also the lock: a second deploy of a service is refused. */
async function serveStatus(service: string, view: () => DeployView, ctx: DeployContext, actions: Record<string, ActionHandler> = {}): Promise<StatusServer> {
  const server = new StatusServer({ kind: 'deploy', name: service, dir: ctx.runDir, services: () => ({ [service]: view().get() }), actions });
  await server.listen();
  return server;
}

function resultOf(r: { created: number; removed: number; failed: number; rolledBack: boolean }, view: DeployView): DeployResult {
  const v = view.get();
  return { v: 1, service: v.service, revision: v.revision, previous: v.previous, phase: v.phase, message: v.message, desired: v.desired, ...r, replicas: v.replicas };
}

async function runConverge(state: DeployState, s: Session, ctx: DeployContext, view: DeployView) {
  const r = await converge(state, {
    ops: s.ops,
    store: s.store,
    logger: s.log,
    signal: ctx.signal,
    runDir: ctx.runDir,
    fleetDrain: ctx.fleetDrain,
    image: (rec: RevisionRecord) => s.ops.image(rec.imageId),
    onEvent: (e) => {
      view.apply(e);
      ctx.onEvent?.(e);
    },
  });
  view.state = r.state;
  view.observe(r.replicas);
  return r;
}

/** Create or reconcile a service; a changed spec rolls out. */
export async function deployUp(spec: DeploySpec, ctx: DeployContext & { dryRun?: boolean; autoscale?: AutoscaleSpec; watch?: boolean }): Promise<DeployResult> {
  checkService(spec.service);
  checkReplicas(spec.replicas);
  const s = session(ctx);
  const image = await s.ops.image(spec.container.image);
  if (spec.container.port === undefined && (spec.container.health.kind === 'http' || spec.container.health.kind === 'tcp')) {
    throw new UserError(`--health-${spec.container.health.kind} needs the container port`, 'pass --port PORT', ExitCode.usage);
  }
  const net = spec.container.network;
  if (net && !['bridge', 'host', 'none'].includes(net) && !net.includes(':')) await s.ops.checkNetwork(net);
  const revision = revisionOf(image.id, spec.container);
  const old = await loadState(s.store, spec.service);
  const observed = await s.ops.replicas(spec.service);
  const record: RevisionRecord = { revision, imageId: image.id, spec, since: old?.current.revision === revision ? old.current.since : new Date().toISOString() };
  const previous = old && old.current.revision !== revision ? old.current : old?.previous;
  const state: DeployState = { v: 1, service: spec.service, current: record, previous, phase: old?.phase ?? 'steady', message: old?.message, failedRevision: old?.current.revision === revision ? old.failedRevision : undefined, autoscale: old?.autoscale, gating: old?.gating, updated: '' };

  if (ctx.dryRun) return dryRunResult(state, observed);

  const auto = ctx.autoscale ? { min: ctx.autoscale.min, max: ctx.autoscale.max, metric: ctx.autoscale.metric, target: ctx.autoscale.target } : null;
  const view = new DeployView(state, auto);
  view.observe(observed);
  if (ctx.watch || ctx.autoscale) return deployWatch(state, s, ctx, view, ctx.autoscale);
  return convergeServed(state, s, ctx, view);
}

/** One converge of a saved state, with the service's status socket served meanwhile. */
async function convergeServed(state: DeployState, s: Session, ctx: DeployContext, view = new DeployView(state)): Promise<DeployResult> {
  await s.ops.ping(); // Docker unreachable (or no permission): say so before anything is written
  const server = await serveStatus(state.service, () => view, ctx);
  try {
    return resultOf(await runConverge(await saveState(s.store, state), s, ctx, view), view);
  } finally {
    await server.close();
  }
}

/** --dry-run: the steps a converge to `state` would take from the containers there are now; nothing is changed. */
function dryRunResult(state: DeployState, observed: readonly Replica[]): DeployResult {
  const spec = state.current.spec;
  const steps = simulatePlan(observed, { revision: state.current.revision, replicas: spec.replicas, ...resolveBudget(spec.rollout, spec.replicas) });
  const view = new DeployView(state);
  view.observe(observed);
  return { ...resultOf({ created: 0, removed: 0, failed: 0, rolledBack: false }, view), phase: 'dry-run', plan: steps.map(planText) };
}

function planText(step: Step) {
  return { note: step.note, create: [...step.create], remove: step.remove.map((x) => ({ name: x.replica.name, revision: x.replica.revision, reason: x.reason })) };
}

/**
 * The long-running form: converge, then keep converging (a crashed replica is replaced, a scale
 * request applied) and, with autoscaling, sample load and decide every interval. Docker going away
 * is logged and retried; only a signal ends it.
 */
async function deployWatch(initial: DeployState, s: Session, ctx: DeployContext, view: DeployView, auto?: AutoscaleSpec): Promise<DeployResult> {
  let state = initial;
  let wake: (() => void) | null = null;
  let requested: number | null = null;
  // The socket first: it is also the lock, so a second deploy of the service writes nothing.
  const server = await serveStatus(state.service, () => view, ctx, {
    scale: async (args) => {
      const n = checkReplicas(Number(args.replicas));
      requested = n;
      wake?.();
      server.event('scale', `scale to ${n} requested`, state.service);
      return { service: state.service, replicas: n };
    },
  });
  let scaler: ScalerState = initialScalerState;
  try {
    state = await saveState(s.store, initial);
  } catch (err) {
    await server.close();
    throw err;
  }
  const totals = { created: 0, removed: 0, failed: 0, rolledBack: false };
  const tick = auto?.intervalMs ?? 2_000;
  ctx.signal?.addEventListener('abort', () => wake?.(), { once: true });
  try {
    while (!ctx.signal?.aborted) {
      try {
        if (requested !== null) {
          state = await saveState(s.store, { ...state, current: { ...state.current, spec: { ...state.current.spec, replicas: requested } } });
          requested = null;
        }
        const r = await runConverge(state, s, ctx, view);
        state = r.state;
        totals.created += r.created;
        totals.removed += r.removed;
        totals.failed += r.failed;
        totals.rolledBack ||= r.rolledBack;
        if (auto) {
          const now = Date.now();
          const sample = await sampleLoad(auto, state.service, r.replicas, state.current.spec.container.port, s.ops, now, ctx.runDir);
          const { state: next, decision } = decide(scaler, auto, state.current.spec.replicas, sample, now);
          scaler = next;
          view.lastDecision = decision;
          const changed = decision.to !== decision.from;
          s.log[changed ? 'info' : 'debug'](`autoscale ${decision.from} -> ${decision.to}: ${decision.reason}`, { service: state.service, mode: decision.mode, load: decision.load, source: sample?.source });
          if (changed) {
            server.event('scale', `${decision.from} -> ${decision.to}: ${decision.reason}`, state.service);
            state = await saveState(s.store, { ...state, current: { ...state.current, spec: { ...state.current.spec, replicas: decision.to } }, autoscale: { last: decision } });
            view.state = state;
            continue;
          }
        }
        server.notify();
      } catch (err) {
        if (ctx.signal?.aborted) break;
        if (!(err instanceof UserError) || err.exitCode !== ExitCode.unavailable) throw err;
        s.log.warn(`${describeError(err)}; retrying`, { service: state.service });
        server.event('error', describeError(err), state.service);
      }
      await new Promise<void>((resolve) => {
        if (ctx.signal?.aborted) return resolve();
        const t = setTimeout(resolve, tick);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = null;
    }
  } finally {
    await server.close();
  }
  return resultOf(totals, view);
}

async function liveSocket(service: string, runDir?: string): Promise<string | undefined> {
  const s = (await listStatusSockets(runDir)).find((x) => x.kind === 'deploy' && x.name === service);
  if (!s) return undefined;
  try {
    await requestStatus(s.path, { op: 'snapshot' }, 1500);
    return s.path;
  } catch {
    return undefined; // a stale socket of a dead process
  }
}

/** Scale: through the running `deploy --watch` of the service when there is one, else directly. */
export async function deployScale(service: string, replicas: number, ctx: DeployContext): Promise<DeployResult | { v: 1; service: string; desired: number; via: string }> {
  checkService(service);
  checkReplicas(replicas);
  const sock = await liveSocket(service, ctx.runDir);
  if (sock) {
    const r = await requestStatus<{ ok: boolean; error?: string }>(sock, { op: 'action', action: 'scale', args: { service, replicas } });
    if (!r.ok) throw new UserError(`the running deploy of ${service} refused to scale: ${r.error ?? 'no reason'}`, 'check elastic deploy status', ExitCode.refused);
    return { v: 1, service, desired: replicas, via: 'running deploy' };
  }
  const s = session(ctx);
  const old = await loadState(s.store, service);
  if (!old) throw noDeploy(service);
  return convergeServed({ ...old, current: { ...old.current, spec: { ...old.current.spec, replicas } } }, s, ctx);
}

/** Go back to the previous revision (a rolling update the other way). */
export async function deployRollback(service: string, ctx: DeployContext & { dryRun?: boolean }): Promise<DeployResult> {
  checkService(service);
  const s = session(ctx);
  const old = await loadState(s.store, service);
  if (!old) throw noDeploy(service);
  if (!old.previous) {
    const why = old.failedRevision ? ` (its last rollout, ${old.failedRevision}, failed and was rolled back already)` : '';
    throw new UserError(`${service} has no previous revision to roll back to${why}`, 'deploy the revision you want with elastic deploy IMAGE --name ...', ExitCode.usage);
  }
  await s.ops.image(old.previous.imageId);
  const next: DeployState = { ...old, current: { ...old.previous, spec: { ...old.previous.spec, replicas: old.current.spec.replicas } }, previous: old.current, phase: 'rolling back', message: `rolling back to ${old.previous.revision}` };
  if (ctx.dryRun) return dryRunResult(next, await s.ops.replicas(service));
  return convergeServed(next, s, ctx);
}

/** Remove the service: every replica drained, stopped and removed; its state forgotten. */
export async function deployRm(service: string, ctx: DeployContext): Promise<{ v: 1; service: string; removed: number }> {
  checkService(service);
  if (await liveSocket(service, ctx.runDir)) throw new UserError(`a deploy of ${service} is running (its status socket answers)`, 'stop it first (Ctrl-C or SIGTERM), then run deploy rm', ExitCode.refused);
  const s = session(ctx);
  await s.ops.ping();
  const old = await loadState(s.store, service);
  let removed = 0;
  if (old) {
    const state: DeployState = { ...old, current: { ...old.current, spec: { ...old.current.spec, replicas: 0 } } };
    const view = new DeployView(state);
    removed += (await runConverge(state, s, ctx, view)).removed;
  }
  const left = await s.ops.replicas(service);
  if (!old && left.length === 0) throw noDeploy(service);
  await Promise.all(left.map(async (r) => s.ops.remove(r.id)));
  removed += left.length;
  await s.store.delete(`deploy-${service}`);
  return { v: 1, service, removed };
}

/** The state of one service, or of every service deployed on the Docker host. */
export async function deployStatus(service: string | undefined, ctx: DeployContext): Promise<{ v: 1; services: ServiceView[] }> {
  const s = session(ctx);
  // Without a name: every service with containers, and every one with a state file (a service
  // scaled to 0 has no container left, but is still deployed).
  const names = service ? [checkService(service)] : [...new Set([...(await s.ops.services()), ...(await s.store.keys()).flatMap((k) => serviceOfKey(k) ?? [])])].sort();
  const out: ServiceView[] = [];
  for (const name of names) {
    const sock = await liveSocket(name, ctx.runDir);
    if (sock) {
      const snap = await requestStatus<Snapshot>(sock).catch(() => undefined);
      const live = snap?.services[name] as ServiceView | undefined;
      if (live) {
        out.push(live);
        continue;
      }
    }
    const state = await loadState(s.store, name);
    const replicas = await s.ops.replicas(name);
    if (!state) {
      if (service && replicas.length === 0) throw noDeploy(name);
      if (replicas.length === 0) continue;
      out.push({ service: name, image: '?', revision: replicas[0]!.revision, previous: null, failedRevision: null, phase: 'steady', message: 'no state file: showing containers only', desired: replicas.length, ready: 0, replicas: replicas.map((r) => ({ ...r, phase: 'existing' as const })), autoscale: null });
      continue;
    }
    const view = new DeployView(state);
    view.observe(replicas);
    if (state.phase === 'rolling' || state.phase === 'rolling back') {
      // A rollout serves its status socket for as long as it runs: none answered, so its owner is gone.
      view.phase = 'interrupted';
      view.message = `the deploy that was ${state.phase} ${name} is not running any more (killed?): re-run it, or elastic deploy scale ${name} --replicas N, to carry on from the containers there are`;
    }
    out.push(view.get());
  }
  return { v: 1, services: out };
}
