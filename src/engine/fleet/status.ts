import { digestOf, splitHosts, textForHost } from './hosts.js';
import type { HostStatus } from './host-status.js';
import { Keys, type FleetStore, type KeyValue } from './store.js';
import { parseJson, readCurrent, readVersion, type VersionRecord } from './versions.js';

/**
 * `elastic cluster status`: the fleet as the store sees it. A host is alive while its lease key
 * exists; converged when it applied the current version and its digest is the one this host's
 * part of that version has (so a host that applied something else under the same number shows).
 */
export interface HostView {
  readonly name: string;
  readonly alive: boolean;
  readonly appliedVersion: number | null;
  readonly converged: boolean;
  readonly digest: string | null;
  readonly expectedDigest: string | null;
  readonly refusal: HostStatus['refusal'];
  readonly elbRefusal: NonNullable<HostStatus['elbRefusal']> | null;
  readonly addresses: readonly string[];
  readonly elastic: string | null;
  readonly updatedAt: string | null;
  readonly lastStale: HostStatus['lastStale'];
  /** Old replicas this host drained for the leader (or is draining), by container id. */
  readonly drains: NonNullable<HostStatus['drains']>;
  readonly services: Readonly<Record<string, { backends: number; healthy: number; refused: unknown }>>;
}

export interface FleetStatus {
  readonly v: 1;
  readonly fleet: string;
  readonly version: number | null;
  readonly hash: string | null;
  readonly leader: string | null;
  readonly converged: boolean;
  readonly hosts: HostView[];
}

export async function fleetStatus(store: FleetStore): Promise<FleetStatus> {
  const { pointer } = await readCurrent(store);
  const [rec, hosts, alive, leader] = await Promise.all([pointer ? readVersion(store, pointer.version) : null, store.list(Keys.hostsPrefix), store.list(Keys.alivePrefix), store.get(Keys.leader)]);
  return buildStatus(store.fleet, rec, hosts.kvs, alive.kvs, leader);
}

/** Pure: the status from what the store holds. */
export function buildStatus(fleet: string, rec: VersionRecord | null, hosts: readonly KeyValue[], alive: readonly KeyValue[], leader: KeyValue | null): FleetStatus {
  const aliveNames = new Set(alive.map((kv) => kv.key.slice(Keys.alivePrefix.length)));
  const ff = rec ? splitHosts(rec.text, rec.file) : null;
  const views = hosts
    .map((kv) => parseJson<HostStatus>(kv.value, kv.key))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((h): HostView => {
      const expectedDigest = ff ? digestOf(textForHost(ff, h.name)) : null;
      return {
        name: h.name,
        alive: aliveNames.has(h.name),
        appliedVersion: h.appliedVersion,
        // A guardrail that refused a service's backends means this host does not serve the version yet.
        converged: Boolean(rec) && aliveNames.has(h.name) && h.appliedVersion === rec!.version && h.digest === expectedDigest && !Object.values(h.services ?? {}).some((s) => s.refused),
        digest: h.digest,
        expectedDigest,
        refusal: h.refusal,
        elbRefusal: h.elbRefusal ?? null,
        addresses: h.addresses ?? [],
        elastic: h.elastic ?? null,
        updatedAt: h.updatedAt ?? null,
        lastStale: h.lastStale ?? null,
        drains: h.drains ?? {},
        services: Object.fromEntries(Object.entries(h.services ?? {}).map(([n, s]) => [n, { backends: s.backends.length, healthy: s.backends.filter((b) => b.health === 'healthy' || b.health === 'none').length, refused: s.refused }])),
      };
    });
  const leaderName = leader ? (parseJson<{ host?: string }>(leader.value, Keys.leader).host ?? null) : null;
  return { v: 1, fleet, version: rec?.version ?? null, hash: rec?.hash ?? null, leader: leaderName, converged: views.length > 0 && views.every((h) => h.converged), hosts: views };
}
