import { createRequire } from 'node:module';
import type { HostDrain } from './drains.js';
import { Keys, type FleetStore } from './store.js';

/**
 * A fleet host's status (`hosts/<name>` in the store: what `cluster status` and the leader's
 * drain wait read), built from the agent's view and the daemon's services, and written only when
 * it changed (the store is shared by every host).
 */
export interface HostStatus {
  readonly v: 1;
  readonly name: string;
  readonly addresses: readonly string[];
  readonly elastic: string;
  readonly pid: number;
  readonly appliedVersion: number | null;
  readonly digest: string | null;
  readonly appliedAt: string | null;
  readonly refusal: { readonly version: number; readonly message: string; readonly at: string } | null;
  /** ELB listeners (created on another host) this host does not serve: their port is taken here. */
  readonly elbRefusal?: { readonly message: string; readonly at: string } | null;
  /** Seconds the host could not reach the store, last time it could not (null: never). */
  readonly lastStale: { readonly from: string; readonly to: string } | null;
  /** Old replicas the leader listed as draining, drained here from this host's load balancers (drains.ts). */
  readonly drains?: Readonly<Record<string, HostDrain>>;
  readonly services: Readonly<Record<string, { readonly backends: ReadonlyArray<{ address: string; port: number; health: string }>; readonly refused: unknown }>>;
  readonly updatedAt: string;
}

const VERSION = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
const MAX_BACKENDS_SHOWN = 256;

/** What the agent knows; `services` is the daemon's per-service view (statusServices). */
export type HostView = Omit<HostStatus, 'v' | 'elastic' | 'pid' | 'services' | 'updatedAt'> & { readonly services: Record<string, unknown> };

export function hostStatus(view: HostView): HostStatus {
  const services: Record<string, HostStatus['services'][string]> = {};
  for (const [name, v] of Object.entries(view.services)) {
    const e = v as { backends?: Array<{ address: string; port: number; health: string }>; refused?: unknown };
    services[name] = { backends: (e.backends ?? []).slice(0, MAX_BACKENDS_SHOWN).map((b) => ({ address: b.address, port: b.port, health: b.health })), refused: e.refused ?? null };
  }
  const { name, addresses, appliedVersion, digest, appliedAt, refusal, elbRefusal, lastStale, drains } = view;
  return { v: 1, name, addresses, elastic: VERSION, pid: process.pid, appliedVersion, digest, appliedAt, refusal, elbRefusal, lastStale, drains, services, updatedAt: new Date().toISOString() };
}

/** Writes a host's status when it changed (not on every resync). */
export class HostStatusPublisher {
  private published = '';

  constructor(
    private readonly store: FleetStore,
    private readonly host: string,
  ) {}

  /** A new lease: the store may be new too (wiped), write the status again. */
  reset(): void {
    this.published = '';
  }

  async publish(st: HostStatus): Promise<void> {
    const key = JSON.stringify({ ...st, updatedAt: '' });
    if (key === this.published) return;
    await this.store.put({ key: Keys.host(this.host), value: JSON.stringify(st) });
    this.published = key;
  }
}
