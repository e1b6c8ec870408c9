import { isIdent } from '../model/validate.js';
import type { StateStore } from '../runtime/state-store.js';
import type { Decision } from './autoscale.js';
import type { DeploySpec } from './spec.js';

/**
 * What deploy remembers per service, in the state store under `deploy-<service>`: the revision it
 * converges to, the one before (for rollback), and where the last rollout got to. The containers
 * themselves are the other half of the truth: a run always re-reads them (level-triggered), so a
 * lost or stale state file costs the rollback target, never a wrong action.
 */
export interface RevisionRecord {
  readonly revision: string;
  readonly imageId: string;
  readonly spec: DeploySpec;
  readonly since: string;
}

export type Phase = 'steady' | 'rolling' | 'rolling back' | 'rolled back' | 'interrupted' | 'failed';

export interface DeployState {
  readonly v: 1;
  readonly service: string;
  readonly current: RevisionRecord;
  readonly previous?: RevisionRecord;
  readonly phase: Phase;
  readonly message?: string;
  /** A revision that failed its rollout and was rolled back. */
  readonly failedRevision?: string;
  readonly autoscale?: { readonly last?: Decision };
  /**
   * Replicas (container ids, 12 hex) this deploy created that have not passed its health gate
   * (yet, or ever): load balancers leave them out (deploy/readiness.ts). Written before the
   * container starts, so no balancer ever sees it running unlisted.
   */
  readonly gating?: readonly string[];
  /**
   * Old replicas being drained before they stop (written before the drain starts, dropped once
   * removed): in a fleet every host drains them from its own load balancers and reports it
   * (fleet/drains.ts); the leader waits for that before it stops the container.
   */
  readonly draining?: readonly DrainingReplica[];
  readonly updated: string;
}

export interface DrainingReplica {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** How long a host's drain may wait for its connections, ms (the deploy's drain timeout). */
  readonly timeoutMs: number;
  readonly since: string;
}

export const stateKey = (service: string) => `deploy-${service}`;

export async function loadState(store: StateStore, service: string): Promise<DeployState | undefined> {
  const s = await store.get<DeployState>(stateKey(service));
  return s && s.v === 1 && s.service === service && s.current ? s : undefined;
}

export async function saveState(store: StateStore, s: Omit<DeployState, 'updated'>): Promise<DeployState> {
  const full = { ...s, updated: new Date().toISOString() };
  await store.put(stateKey(s.service), full);
  return full;
}

/** Services with a state file (for `deploy status` across services). */
export function serviceOfKey(key: string): string | undefined {
  const m = /^deploy-(.+)$/.exec(key);
  return m && isIdent(m[1]!) ? m[1] : undefined;
}
