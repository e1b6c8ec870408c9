import type { TopFleet } from './fleet.js';
/**
 * `top`'s own view model: what every status-socket kind is turned into (by adapters.ts) and what
 * the store, the Ink views and the plain renderer read. Plain data; every string in it has been
 * made printable by the adapter (status sockets are local but their content comes from container
 * names, labels and tags).
 */

/** Monotonic counters a backend or service may report; rates come from their deltas. */
export interface Counters {
  packets?: number;
  bytes?: number;
  /** Sessions or requests served (HAProxy stot, edge requests). */
  hits?: number;
}

export type CounterName = keyof Counters;
export const COUNTER_NAMES: readonly CounterName[] = ['packets', 'bytes', 'hits'];

export interface BackendSample {
  /** Unique within its service: `address:port`, or the backend id when there is no address. */
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly port: number | null;
  /** docker, ec2, static, or the kind that reported it when it does not say. */
  readonly source: string;
  /** healthy, unhealthy, starting, none, or `-` when the source does not know. */
  readonly health: string;
  /** running, draining, disabled, or `-`. */
  readonly state: string;
  readonly counters: Counters;
  /** Current sessions / connections. */
  readonly sessions?: number;
  readonly queued?: number;
}

/** One service of one source: a mapping (map-image), a frontend (render), a route (edge/node), a deploy. */
export interface ServiceSample {
  readonly service: string;
  /** What the service is in that kind's words: mapping, frontend, route, deploy, service. */
  readonly role: string;
  readonly backends: readonly BackendSample[];
  /** Service-level counters (requests at the edge, timeouts, starts). */
  readonly counters: Counters & { timeouts?: number; starts?: number };
  readonly queued?: number;
  readonly active?: number;
  readonly capacity?: number;
  readonly nodes?: number;
  readonly replicas?: number;
  readonly desired?: number;
  readonly waitP50Ms?: number;
  readonly waitP99Ms?: number;
  /** Short extra facts for the drill-down (image, port, data plane, last error...). */
  readonly detail: Readonly<Record<string, string>>;
}

export interface SourceEvent {
  readonly time: string;
  readonly type: string;
  readonly message: string;
  readonly service?: string;
}

/** One status socket (or the Docker fallback) after adaptation. */
export interface SourceSample {
  readonly kind: string;
  readonly name: string;
  readonly pid: number | null;
  /** Time the sample was taken (snapshot time, else receive time), ms since epoch. */
  readonly time: number;
  readonly services: readonly ServiceSample[];
  readonly events: readonly SourceEvent[];
  /** A fleet daemon's view of its fleet (its status socket's `fleet`). */
  readonly fleet?: TopFleet | null;
}

export const sourceId = (s: { kind: string; name: string }) => `${s.kind}.${s.name}`;
