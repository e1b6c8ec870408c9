import { checkGuardrails, type Refusal } from '../frontends/guardrails.js';
import type { Backend, BackendSet } from '../model/backend.js';
import type { ServiceConfig } from './config.js';

/**
 * The pure middle of the daemon: the backends of a service are the union of its sources' sets
 * (relabelled with the service name), then the service's guardrails decide whether the new set
 * is accepted or the last accepted one keeps serving.
 */
export function unionOf(service: string, sets: ReadonlyArray<BackendSet | undefined>): BackendSet {
  const byId = new Map<string, Backend>();
  for (const set of sets) for (const b of set ?? []) if (!byId.has(b.id)) byId.set(b.id, { ...b, service });
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export type Verdict = { accepted: true; backends: BackendSet } | { accepted: false; refusals: Refusal[] };

/** Guardrails of one service: `previous` is the last accepted id list (memory, or state after a restart). */
export function judge(s: Pick<ServiceConfig, 'name' | 'guard'>, next: BackendSet, previous: readonly string[] | undefined): Verdict {
  const refusals = checkGuardrails(previous ? { [s.name]: previous } : undefined, { [s.name]: next.map((b) => b.id) }, { minBackends: s.guard.minBackends, maxChangePct: s.guard.maxChangePct, force: false });
  return refusals.length ? { accepted: false, refusals } : { accepted: true, backends: next };
}

export const sameIds = (a: BackendSet | undefined, b: BackendSet): boolean =>
  a !== undefined && a.length === b.length && a.every((x, i) => x.id === b[i]!.id && x.address === b[i]!.address && x.port === b[i]!.port);
