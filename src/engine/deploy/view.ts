import type { Decision } from './autoscale.js';
import type { Replica } from './plan.js';
import type { ReplicaPhase, RolloutEvent } from './rollout.js';
import type { DeployState, Phase } from './state.js';

/**
 * The live picture of one service: what its status socket serves (kind `deploy`, docs/deploy.md)
 * and what the progress display draws. Folded from rollout events and Docker listings.
 */
export interface ReplicaView {
  id: string;
  name: string;
  revision: string;
  index: number;
  phase: ReplicaPhase;
  detail?: string;
  state?: string;
  health?: string;
  address?: string;
  port?: number;
}

export interface ServiceView {
  readonly service: string;
  readonly image: string;
  readonly revision: string;
  readonly previous: string | null;
  readonly failedRevision: string | null;
  readonly phase: Phase;
  readonly message: string | null;
  readonly desired: number;
  readonly ready: number;
  readonly replicas: readonly ReplicaView[];
  readonly autoscale: { min: number; max: number; metric: string; target: number; last: Decision | null } | null;
}

export class DeployView {
  private readonly replicas = new Map<string, ReplicaView>();
  phase: Phase = 'steady';
  message: string | null = null;
  lastDecision: Decision | null = null;

  constructor(public state: DeployState, public autoscale: { min: number; max: number; metric: string; target: number } | null = null) {
    this.phase = state.phase;
    this.message = state.message ?? null;
    this.lastDecision = state.autoscale?.last ?? null;
  }

  apply(e: RolloutEvent): void {
    if (e.type === 'phase') {
      this.phase = e.phase;
      this.message = e.message;
    } else if (e.type === 'replica') {
      const old = this.replicas.get(e.id);
      if (e.phase === 'removed') {
        this.replicas.delete(e.id);
        return;
      }
      this.replicas.set(e.id, { ...old, id: e.id, name: e.name, revision: e.revision, index: e.index, phase: e.phase === 'existing' && old ? old.phase : e.phase, detail: e.detail });
    }
  }

  /** Refresh from a Docker listing: replicas that vanished go, new ones appear as existing. */
  observe(list: readonly Replica[]): void {
    const ids = new Set(list.map((r) => r.id));
    for (const id of [...this.replicas.keys()]) if (!ids.has(id)) this.replicas.delete(id);
    const port = this.state.current.spec.container.port;
    for (const r of list) {
      const v = this.replicas.get(r.id);
      const serving = r.revision === this.state.current.revision && r.state === 'running' && r.health !== 'unhealthy' && r.health !== 'starting';
      const phase: ReplicaPhase = !v || v.phase === 'existing' ? (serving ? 'ready' : 'existing') : v.phase;
      this.replicas.set(r.id, { ...v, id: r.id, name: r.name, revision: r.revision, index: r.index, phase, state: r.state, health: r.health, address: r.address, port });
    }
  }

  get(): ServiceView {
    const s = this.state;
    const replicas = [...this.replicas.values()].sort((a, b) => a.index - b.index || (a.name < b.name ? -1 : 1));
    return {
      service: s.service,
      image: s.current.spec.container.image,
      revision: s.current.revision,
      previous: s.previous?.revision ?? null,
      failedRevision: s.failedRevision ?? null,
      phase: this.phase,
      message: this.message,
      desired: s.current.spec.replicas,
      ready: replicas.filter((r) => r.revision === s.current.revision && r.phase === 'ready').length,
      replicas,
      autoscale: this.autoscale ? { ...this.autoscale, last: this.lastDecision } : null,
    };
  }
}
