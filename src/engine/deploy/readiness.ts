import type { Backend } from '../model/backend.js';
import { FileStateStore, type StateStore } from '../runtime/state-store.js';
import { loadState } from './state.js';

/**
 * Readiness of deployed replicas, for the load balancers: a replica a deploy created is served
 * only once it passed the deploy's health gate. The deploy lists the replicas still gating in its
 * state (`gating`, written before the container starts) and, when one passes, removes it and
 * touches the container (an empty `docker update`: an `update` event) so discovery re-lists at
 * once. Discovery calls `withoutGating` on every list.
 *
 * Only containers labelled `elastic.managed=true` whose deploy state (same state directory) lists
 * them are left out: no state, an unreadable one or a container not listed is served as before
 * (a balancer that drops live backends on a missing file is worse than one that waits).
 */
export const GATING_REASON = 'waiting for its deploy health gate';

export async function gatingReplicas(service: string, store: StateStore): Promise<ReadonlySet<string>> {
  const state = await loadState(store, service).catch(() => undefined);
  return new Set(Array.isArray(state?.gating) ? state.gating.filter((id) => typeof id === 'string') : []);
}

/** Backends minus the deployed replicas that have not passed their gate; those are returned as skipped. */
export async function withoutGating(
  backends: readonly Backend[],
  store: StateStore = new FileStateStore(),
): Promise<{ backends: Backend[]; skipped: Array<{ id: string; reason: string }> }> {
  const managed = backends.filter((b) => b.source === 'docker' && b.labels['elastic.managed'] === 'true' && b.labels['elastic.service']);
  if (managed.length === 0) return { backends: [...backends], skipped: [] };
  const sets = new Map<string, ReadonlySet<string>>();
  for (const svc of new Set(managed.map((b) => b.labels['elastic.service']!))) sets.set(svc, await gatingReplicas(svc, store));
  const out: Backend[] = [];
  const skipped: Array<{ id: string; reason: string }> = [];
  for (const b of backends) {
    const gating = b.labels['elastic.managed'] === 'true' ? sets.get(b.labels['elastic.service'] ?? '') : undefined;
    const id = b.id.slice('docker:'.length);
    if (gating?.has(id)) skipped.push({ id, reason: GATING_REASON });
    else out.push(b);
  }
  return { backends: out, skipped };
}
