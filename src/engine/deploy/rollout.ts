import { describeError, ExitCode, UserError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import type { StateStore } from '../runtime/state-store.js';
import type { DeployDocker, ImageFacts } from './docker-ops.js';
import { drainEverywhere, type DrainOutcome } from './drain.js';
import { describeCheck, resolveGate, waitGate } from './gate.js';
import { isAvailableOld, planStep, type Replica, type RemoveReason } from './plan.js';
import { resolveBudget } from './spec.js';
import { saveState, type DeployState, type DrainingReplica, type Phase, type RevisionRecord } from './state.js';

/**
 * The rollout executor: observe the service's containers, ask the planner for the next step, do
 * it (creates and health gates, drains and removals, in parallel), and again until converged.
 * Failures of the health gate are counted; at the threshold the rollout turns around to the
 * previous revision. Docker going away stops it where it is, with the state saved as
 * `interrupted`: the next run re-reads the containers and carries on.
 */
export type ReplicaPhase = 'existing' | 'creating' | 'starting' | 'healthy' | 'ready' | 'failed' | 'draining' | 'stopping' | 'removed';

export type RolloutEvent =
  | { readonly type: 'replica'; readonly id: string; readonly name: string; readonly revision: string; readonly index: number; readonly phase: ReplicaPhase; readonly detail?: string }
  | { readonly type: 'phase'; readonly phase: Phase; readonly message: string }
  | { readonly type: 'drain'; readonly id: string; readonly outcomes: readonly DrainOutcome[] };

export interface ExecutorOptions {
  readonly ops: DeployDocker;
  readonly store: StateStore;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
  readonly runDir?: string;
  readonly onEvent?: (e: RolloutEvent) => void;
  /** Images by revision (the target's, and the previous one's for a rollback). */
  readonly image: (rec: RevisionRecord) => Promise<ImageFacts>;
  readonly gatePollMs?: number;
  /**
   * A fleet leader: every other live host drains the replica from its own load balancers (it
   * follows `draining` in the deploy state, fleet/drains.ts); resolves with each host's outcome,
   * bounded by the replica's drain timeout.
   */
  readonly fleetDrain?: (r: DrainingReplica, signal?: AbortSignal) => Promise<readonly DrainOutcome[]>;
}

export interface ConvergeResult {
  readonly state: DeployState;
  readonly replicas: readonly Replica[];
  readonly created: number;
  readonly removed: number;
  readonly failed: number;
  readonly rolledBack: boolean;
}

export async function converge(initial: DeployState, opts: ExecutorOptions): Promise<ConvergeResult> {
  const log = opts.logger ?? nullLogger;
  const emit = opts.onEvent ?? (() => {});
  let state = initial;
  const service = state.service;
  let target = state.current;
  let gates = { ready: new Set<string>(), failed: new Set<string>() };
  let failures = 0;
  let created = 0;
  let removed = 0;
  let totalFailed = 0;
  let rolledBack = false;
  const reasons: string[] = [];
  const seen = new Set<string>();
  /** Old replicas signalled to stop, being waited for and removed in the background. */
  const retiring = new Map<string, Promise<void>>();
  const backgroundErrors: unknown[] = [];
  /** Replicas not admitted by their gate: the load balancers leave them out (readiness.ts). */
  const gating = new Set(state.gating ?? []);
  const gatingKnown = state.gating !== undefined;
  /** Old replicas being drained (every host of a fleet drains them too): dropped once removed. */
  const draining = new Map((state.draining ?? []).map((d) => [d.id, d]));
  let saving: Promise<unknown> = Promise.resolve();
  /** Every state write goes through here, one after the other: gates finish in parallel. */
  const save = (extra: Partial<DeployState> = {}): Promise<void> => {
    const next = saving.then(async () => {
      state = await saveState(opts.store, { ...state, ...extra, gating: [...gating], draining: [...draining.values()] });
    });
    saving = next.catch(() => {});
    return next;
  };
  const setPhase = async (phase: Phase, message: string, extra: Partial<DeployState> = {}) => {
    await save({ ...extra, phase, message });
    emit({ type: 'phase', phase, message });
    log.debug(message, { service, phase });
  };
  const portOf = (revision: string) => (revision === state.previous?.revision ? state.previous.spec.container.port : undefined) ?? target.spec.container.port;

  try {
    for (let round = 0; ; round++) {
      if (opts.signal?.aborted) throw new UserError(`deploy of ${service} stopped by a signal`, 're-run the same command to carry on from where it stopped', ExitCode.failure);
      if (backgroundErrors.length) throw backgroundErrors[0];
      const all = await opts.ops.replicas(service);
      const observed = all.filter((r) => !retiring.has(r.id));
      const gone = [...gating, ...draining.keys()].filter((id) => !all.some((r) => r.id === id));
      if (gone.length) {
        for (const id of gone) {
          gating.delete(id);
          draining.delete(id);
        }
        await save();
      }
      for (const r of observed) {
        if (!seen.has(r.id)) emit({ type: 'replica', id: r.id, name: r.name, revision: r.revision, index: r.index, phase: 'existing', detail: `${r.state}${r.health !== 'none' ? ` (${r.health})` : ''}` });
        seen.add(r.id);
      }
      // A running replica of the target that is not gating passed its gate before (this run or
      // an earlier one): a re-converge (--watch, autoscaling) does not gate it again. A state
      // written before `gating` existed cannot tell: those are gated once more.
      if (gatingKnown) {
        for (const r of observed) if (r.revision === target.revision && r.state === 'running' && r.health !== 'unhealthy' && r.health !== 'starting' && !gating.has(r.id) && !gates.failed.has(r.id)) gates.ready.add(r.id);
      }
      const spec = target.spec;
      const budget = resolveBudget(spec.rollout, spec.replicas);
      const step = planStep(observed, { revision: target.revision, replicas: spec.replicas, ...budget }, gates);
      if (step.done && retiring.size > 0) {
        await Promise.all(retiring.values()); // then look again
        continue;
      }
      if (step.done) {
        const phase: Phase = rolledBack ? 'rolled back' : 'steady';
        const msg = rolledBack
          ? `rolled back ${service} to ${target.revision}: ${state.failedRevision} failed its health gate (${reasons[0] ?? 'see log'})`
          : `${service} converged: ${spec.replicas} replica(s) of ${target.revision}`;
        if (state.phase !== phase || round > 0) await setPhase(phase, msg);
        return { state, replicas: observed, created, removed, failed: totalFailed, rolledBack };
      }
      // Every step says where the rollout is (the live header, `deploy status`, the log).
      await setPhase(state.phase === 'rolling back' ? 'rolling back' : 'rolling', `${service}: ${step.note}`);

      const image = await opts.image(target);
      const check = resolveGate(spec.container.health, image, spec.container.port);
      const gateOne = async (r: Pick<Replica, 'id' | 'name' | 'revision' | 'index'>) => {
        const ev = (phase: ReplicaPhase, detail?: string) => emit({ type: 'replica', id: r.id, name: r.name, revision: r.revision, index: r.index, phase, detail });
        ev('starting', describeCheck(check));
        const res = await waitGate(opts.ops, r.id, {
          check,
          network: spec.container.network,
          minHealthyMs: spec.rollout.minHealthyMs,
          deadlineMs: spec.rollout.deadlineMs,
          pollMs: opts.gatePollMs,
          signal: opts.signal,
          onState: (s, d) => ev(s, d),
        });
        if (res.ok) {
          gates.ready.add(r.id);
          // Admitted: the load balancers may serve it now (the touch makes discovery look at once).
          if (gating.delete(r.id)) {
            await save();
            await opts.ops.touch(r.id).catch((err: unknown) => log.warn(`could not touch ${r.name} (load balancers serve it at their next resync): ${describeError(err)}`, { service }));
          }
          ev('ready', `${res.ms} ms`);
        } else {
          gates.failed.add(r.id);
          failures++;
          totalFailed++;
          reasons.push(res.reason);
          ev('failed', res.reason);
          log.warn(`replica ${r.name} failed its health gate: ${res.reason}`, { service, revision: r.revision });
        }
      };
      const retire = async (r: Replica, reason: RemoveReason) => {
        const ev = (phase: ReplicaPhase, detail?: string) => emit({ type: 'replica', id: r.id, name: r.name, revision: r.revision, index: r.index, phase, detail });
        const port = portOf(r.revision);
        if (isAvailableOld(r) && r.address && port && (reason === 'old revision' || reason === 'scale down')) {
          ev('draining', `${r.address}:${port}`);
          // In a fleet, on record (fenced) before any drain: the fleet's hosts drain it too. Only
          // there: on one host this write came while render drained the replica, and render's
          // pass on the changed deploy state undid the drain (run-trust-render, 2026-11-26).
          const d: DrainingReplica = { id: r.id, address: r.address, port, timeoutMs: spec.rollout.drainTimeoutMs, since: new Date().toISOString() };
          if (opts.fleetDrain) {
            draining.set(r.id, d);
            await save();
          }
          const [here, fleet] = await Promise.all([drainEverywhere({ service, address: r.address, port }, d.timeoutMs, { runDir: opts.runDir, logger: log }), opts.fleetDrain?.(d, opts.signal) ?? []]);
          emit({ type: 'drain', id: r.id, outcomes: [...here, ...fleet] });
        }
        ev('stopping', reason);
        // Once signalled it no longer counts (as Kubernetes treats terminating pods): the wait for
        // it to exit overlaps the next step instead of holding the rollout up.
        await opts.ops.signalStop(r.id);
        const done = (async () => {
          await opts.ops.stop(r.id, spec.rollout.stopTimeoutS);
          await opts.ops.remove(r.id);
          removed++;
          gates.ready.delete(r.id);
          const listed = [gating.delete(r.id), draining.delete(r.id)];
          if (listed.some(Boolean)) await save();
          ev('removed', reason);
        })()
          .catch((err: unknown) => void backgroundErrors.push(err))
          .finally(() => retiring.delete(r.id));
        retiring.set(r.id, done);
      };
      const createOne = async (index: number) => {
        const r = await opts.ops.create(service, target.revision, index, spec.container, target.imageId, spec.rollout.stopTimeoutS, async (id) => {
          gating.add(id); // on record before it runs: no balancer serves it before its gate
          await save();
        });
        seen.add(r.id);
        created++;
        emit({ type: 'replica', id: r.id, name: r.name, revision: r.revision, index, phase: 'creating' });
        await gateOne(r);
      };
      const results = await Promise.allSettled([...step.remove.map((x) => retire(x.replica, x.reason)), ...step.create.map(createOne), ...step.gate.map(gateOne)]);
      const failedOp = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failedOp) throw failedOp.reason;

      if (failures >= spec.rollout.failureThreshold) {
        const prev = state.previous;
        if (!rolledBack && state.phase !== 'rolling back' && prev && prev.revision !== target.revision) {
          const failed = target;
          // `previous` is not the failed revision: `deploy rollback` must not re-deploy what just failed.
          await setPhase('rolling back', `${failures} new replica(s) of ${failed.revision} failed their health gate (${reasons[0]}): rolling back to ${prev.revision}`, {
            current: prev,
            previous: undefined,
            failedRevision: failed.revision,
          });
          target = prev;
          rolledBack = true;
          gates = { ready: new Set(), failed: new Set() };
          failures = 0;
          continue;
        }
        // Nothing to go back to (a first deploy), or the rollback itself fails: stop, clean up.
        const leftovers = (await opts.ops.replicas(service)).filter((r) => gates.failed.has(r.id) && !retiring.has(r.id));
        await Promise.all(leftovers.map((r) => retire(r, 'failed')));
        await Promise.all(retiring.values());
        const what = rolledBack ? `the rollback of ${service} to ${target.revision} failed too` : `revision ${target.revision} of ${service} failed its health gate on ${failures} replica(s)`;
        await setPhase('failed', `${what}: ${reasons[reasons.length - 1]}`);
        throw new UserError(
          `${what}: ${reasons[reasons.length - 1]}`,
          reasons.some((r) => r.startsWith('health deadline'))
            ? 'the replicas did not become healthy in time: check the health gate (--health-*), raise --health-deadline, or look at `docker logs`'
            : 'check the image, its command and health check (`docker logs` of a failed replica); the failed replicas were removed',
          ExitCode.refused,
        );
      }
    }
  } catch (err) {
    await Promise.allSettled(retiring.values());
    // A daemon shutting down answers 500s before it stops answering at all: ask it once more.
    const lost = (err instanceof UserError && err.exitCode === ExitCode.unavailable) || (!opts.signal?.aborted && !(await opts.ops.ping().then(() => true, () => false)));
    if (lost) {
      const msg = `Docker lost in the middle of the rollout of ${service}: ${describeError(err)}`;
      await setPhase('interrupted', msg).catch(() => {});
      throw new UserError(
        msg,
        `nothing more was changed; when Docker is back, re-run the same command (or \`elastic deploy scale ${service} --replicas N\`): it resumes from the containers that exist`,
        ExitCode.unavailable,
        { cause: err },
      );
    }
    if (!(err instanceof UserError) || err.exitCode !== ExitCode.refused) await setPhase('interrupted', `rollout of ${service} stopped: ${describeError(err)}`).catch(() => {});
    if (opts.signal?.aborted && !(err instanceof UserError)) {
      throw new UserError(`deploy of ${service} stopped by a signal in the middle of the rollout`, 're-run the same command to carry on from where it stopped', ExitCode.failure, { cause: err });
    }
    throw err;
  }
}
