import { printable } from '../model/validate.js';

/**
 * The fleet as `top` shows it (the Hosts view): what `cluster status` says, read either from the
 * store (`top --etcd --fleet`) or from a fleet daemon's status socket (`fleet` in its snapshot).
 * A socket is another process's output: every field is checked and bounded here, as the
 * adapters do for services.
 */
export interface TopHost {
  readonly name: string;
  readonly alive: boolean;
  readonly appliedVersion: number | null;
  readonly converged: boolean;
  readonly leader: boolean;
  /** The last version this host refused, and why (null: none). */
  readonly refusal: string | null;
  /** Backends per service as this host sees them. */
  readonly services: ReadonlyArray<{ readonly service: string; readonly backends: number; readonly healthy: number }>;
}

export interface TopFleet {
  readonly fleet: string;
  readonly version: number | null;
  readonly leader: string | null;
  readonly converged: boolean;
  readonly hosts: readonly TopHost[];
  /** Where it was read: `etcd` (top's own connection) or the status socket's source id. */
  readonly from: string;
  /** The store did not answer at the last read (the rows are the last good ones). */
  readonly error: string | null;
}

const MAX_HOSTS = 256;
const MAX_SERVICES = 64;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const count = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 31 ? v : null);
const text = (v: unknown, max: number): string | null => (typeof v === 'string' ? printable(v, max) : null);

/** A `cluster status` document (FleetStatus, or a snapshot's `fleet`) as Hosts rows; null when it is not one. */
export function adaptFleet(v: unknown, from: string): TopFleet | null {
  // A fleet host whose store did not answer yet sends only `{ fleet, error }`.
  if (!isObj(v) || typeof v.fleet !== 'string' || !(Array.isArray(v.hosts) || typeof v.error === 'string')) return null;
  const leader = text(v.leader, 64);
  const hosts = (Array.isArray(v.hosts) ? v.hosts : []).slice(0, MAX_HOSTS).flatMap((h): TopHost[] => {
    if (!isObj(h) || typeof h.name !== 'string') return [];
    const name = printable(h.name, 64);
    const refusal = isObj(h.refusal) ? `v${count(h.refusal.version) ?? '?'}: ${text(h.refusal.message, 200) ?? ''}` : null;
    const services = isObj(h.services)
      ? Object.entries(h.services)
          .slice(0, MAX_SERVICES)
          .map(([service, s]) => ({ service: printable(service, 64), backends: count(isObj(s) ? s.backends : null) ?? 0, healthy: count(isObj(s) ? s.healthy : null) ?? 0 }))
          .sort((a, b) => (a.service < b.service ? -1 : 1))
      : [];
    return [{ name, alive: h.alive === true, appliedVersion: count(h.appliedVersion), converged: h.converged === true, leader: leader === name, refusal, services }];
  });
  return { fleet: printable(v.fleet, 64), version: count(v.version), leader, converged: v.converged === true, hosts, from: printable(from, 80), error: text(v.error, 200) };
}
