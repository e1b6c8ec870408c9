import { checkGuardrails, type GuardOptions, type Refusal } from '../frontends/guardrails.js';
import type { Backend, BackendSet } from '../model/backend.js';
import type { ServiceConfig } from './config.js';

/**
 * The pure middle of the daemon: the backends of a service are the union of its sources' sets
 * (relabelled with the service name), then the service's guardrails (frontends/guardrails.ts,
 * the one definition render uses too) decide what is served.
 */
export function unionOf(service: string, sets: ReadonlyArray<BackendSet | undefined>): BackendSet {
  const byId = new Map<string, Backend>();
  for (const set of sets) for (const b of set ?? []) if (!byId.has(b.id)) byId.set(b.id, { ...b, service });
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * `accepted`: something may be served (`backends`: the new set plus removals refused);
 * not accepted: no set was ever accepted and this one is too small (the appliers wait).
 */
export type Verdict = { accepted: true; backends: BackendSet; refusals: Refusal[] } | { accepted: false; refusals: Refusal[] };

/** Guardrails of one service: `previous` is the last accepted set (memory, or state after a restart). */
export async function judge(s: Pick<ServiceConfig, 'name' | 'guard'>, next: BackendSet, previous: BackendSet | undefined, opts: GuardOptions = {}): Promise<Verdict> {
  const v = await checkGuardrails(s.name, previous, next, { minBackends: s.guard.minBackends, maxChangePct: s.guard.maxChangePct, force: false }, opts);
  return v.blocked ? { accepted: false, refusals: v.refusals } : { accepted: true, backends: v.backends, refusals: v.refusals };
}

export const sameIds = (a: BackendSet | undefined, b: BackendSet): boolean =>
  a !== undefined && a.length === b.length && a.every((x, i) => x.id === b[i]!.id && x.address === b[i]!.address && x.port === b[i]!.port);

/** A backend known only from the state file (after a restart): what the guardrails and health need. */
export function storedBackend(service: string, b: { id: string; address: string; port: number }, since: string): Backend {
  const source = b.id.startsWith('ec2:') ? 'ec2' : b.id.startsWith('static:') ? 'static' : 'docker';
  return { id: b.id, name: b.id, service, source, address: b.address, port: b.port, state: 'running', health: 'healthy', labels: {}, since };
}
