/**
 * The pure planner: (observed containers, desired revision and count, rollout budget) -> the next
 * step. The executor calls it again after every step with what Docker shows then, so a run that
 * was interrupted (Docker lost, SIGINT) resumes from the containers that exist: level-triggered.
 *
 * Rules, as Kubernetes Deployments and Swarm updates do them:
 * - a new replica counts only once it passed the health gate (`ready`);
 * - the replica total never goes above desired + surge, and available replicas never below
 *   desired - unavailable (surge 1 / unavailable 0: a new one is healthy before an old one goes);
 * - containers that are not running (crashed, left over by an interrupted run) go first, and do
 *   not count as available.
 */
export type ContainerState = 'running' | 'created' | 'restarting' | 'paused' | 'exited' | 'dead' | 'removing';

export interface Replica {
  /** Docker container id, 12 hex. */
  readonly id: string;
  readonly name: string;
  readonly revision: string;
  /** `elastic.replica` (1-based), 0 when unknown. */
  readonly index: number;
  readonly state: ContainerState;
  readonly health: 'healthy' | 'unhealthy' | 'starting' | 'none';
  readonly address?: string;
  readonly created: string;
}

export interface Desired {
  readonly revision: string;
  readonly replicas: number;
  readonly surge: number;
  readonly unavailable: number;
}

/** What the executor knows about new-revision replicas from gating them in this run. */
export interface GateResults {
  readonly ready: ReadonlySet<string>;
  readonly failed: ReadonlySet<string>;
}

export type RemoveReason = 'failed' | 'leftover' | 'old revision' | 'scale down';

export interface Step {
  readonly done: boolean;
  /** New-revision replicas to put through the health gate before planning further. */
  readonly gate: readonly Replica[];
  /** Replica indexes to create (at the desired revision). */
  readonly create: readonly number[];
  readonly remove: ReadonlyArray<{ replica: Replica; reason: RemoveReason }>;
  /** For logs and --dry-run: why this step. */
  readonly note: string;
}

const byIndexDesc = (a: Replica, b: Replica) => b.index - a.index || (a.created < b.created ? 1 : -1);

export function isAvailableOld(r: Replica): boolean {
  return r.state === 'running' && r.health !== 'unhealthy' && r.health !== 'starting';
}

export function planStep(observed: readonly Replica[], want: Desired, gates: GateResults): Step {
  const remove: Array<{ replica: Replica; reason: RemoveReason }> = [];
  const current = observed.filter((r) => r.revision === want.revision);
  const old = observed.filter((r) => r.revision !== want.revision);

  const failed = current.filter((r) => gates.failed.has(r.id) || (r.state !== 'running' && !gates.ready.has(r.id)));
  for (const r of failed) remove.push({ replica: r, reason: gates.failed.has(r.id) ? 'failed' : 'leftover' });
  const live = current.filter((r) => !failed.includes(r));
  const ready = live.filter((r) => gates.ready.has(r.id));
  const pending = live.filter((r) => !gates.ready.has(r.id));

  const oldDown = old.filter((r) => !isAvailableOld(r));
  for (const r of oldDown) remove.push({ replica: r, reason: r.state === 'running' ? 'old revision' : 'leftover' });
  const oldUp = old.filter(isAvailableOld).sort(byIndexDesc);

  // Excess new replicas (a scale down): the not-yet-ready and the highest indexes go first.
  const keep = [...pending, ...ready].length - want.replicas;
  if (keep > 0) {
    const excess = [...pending.sort(byIndexDesc), ...[...ready].sort(byIndexDesc)].slice(0, keep);
    for (const r of excess) remove.push({ replica: r, reason: 'scale down' });
    if (oldUp.length === 0) return { done: false, gate: [], create: [], remove, note: `scale down to ${want.replicas}` };
  }
  const keptPending = pending.filter((r) => !remove.some((x) => x.replica.id === r.id));
  const keptReady = ready.filter((r) => !remove.some((x) => x.replica.id === r.id));

  if (keptPending.length > 0) return { done: false, gate: keptPending, create: [], remove, note: `health gate for ${keptPending.length} new replica(s)` };

  const used = new Set(keptReady.map((r) => r.index));
  const freeIndexes = (n: number) => {
    const out: number[] = [];
    for (let i = 1; out.length < n; i++) if (!used.has(i)) out.push(i);
    return out;
  };

  if (oldUp.length === 0) {
    const missing = want.replicas - keptReady.length;
    if (missing > 0) return { done: false, gate: [], create: freeIndexes(missing), remove, note: `create ${missing} replica(s)` };
    return { done: remove.length === 0, gate: [], create: [], remove, note: remove.length ? 'clean up' : 'converged' };
  }

  // Rolling update: old replicas still serve.
  if (keptReady.length >= want.replicas) {
    for (const r of oldUp) remove.push({ replica: r, reason: 'old revision' });
    return { done: false, gate: [], create: [], remove, note: `all ${want.replicas} new replica(s) ready: remove ${oldUp.length} old` };
  }
  const total = oldUp.length + keptReady.length;
  const create = Math.max(0, Math.min(want.replicas - keptReady.length, want.replicas + want.surge - total));
  const minAvailable = want.replicas - want.unavailable;
  const canRemove = Math.max(0, Math.min(oldUp.length, oldUp.length + keptReady.length - minAvailable));
  for (const r of oldUp.slice(0, canRemove)) remove.push({ replica: r, reason: 'old revision' });
  return {
    done: false,
    gate: [],
    create: freeIndexes(create),
    remove,
    note: `rolling: ${keptReady.length}/${want.replicas} new ready, ${oldUp.length} old serving; create ${create}, remove ${canRemove} old`,
  };
}

/**
 * The whole plan, for `--dry-run`: run the planner against itself, assuming every new replica
 * passes its gate and every removal succeeds.
 */
export function simulatePlan(observed: readonly Replica[], want: Desired): Step[] {
  let world = [...observed];
  const ready = new Set<string>();
  const steps: Step[] = [];
  let seq = 0;
  for (let i = 0; i < 4 * (want.replicas + observed.length) + 10; i++) {
    const step = planStep(world, want, { ready, failed: new Set() });
    if (step.done) break;
    if (step.gate.length === 0) steps.push(step);
    for (const r of step.gate) ready.add(r.id);
    const gone = new Set(step.remove.map((x) => x.replica.id));
    world = world.filter((r) => !gone.has(r.id));
    for (const index of step.create) {
      const id = `planned-${++seq}`;
      world.push({ id, name: `(new ${index})`, revision: want.revision, index, state: 'running', health: 'healthy', created: `~${String(seq).padStart(6, '0')}` });
      ready.add(id);
    }
  }
  return steps;
}
