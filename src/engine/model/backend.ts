/**
 * The backend model every command shares. Plain readonly data: providers build it, the rest of
 * the engine only reads it. SDK types (dockerode, AWS) never get past a provider's adapter.
 */
export type BackendSource = 'docker' | 'ec2' | 'static';

/** Health as the source reports it, or as our own checker measured it. */
export type Health = 'healthy' | 'unhealthy' | 'starting' | 'none';

export interface Backend {
  /** Stable id: `docker:<container id 12>`, `ec2:<instance id>`, `static:<address>:<port>`. */
  readonly id: string;
  /** Human name: container name, EC2 Name tag or instance id, or address:port. */
  readonly name: string;
  /** The service this backend belongs to (selector name, or the elastic.service label). */
  readonly service: string;
  readonly source: BackendSource;
  /** IPv4 or IPv6 address, validated. */
  readonly address: string;
  /** Docker: the container's global IPv6 address on the same network, when it has one (map-image serves it in its ip6 table). */
  readonly address6?: string;
  readonly port: number;
  /** Discovery only returns running backends; kept for forward compatibility (draining). */
  readonly state: 'running' | 'draining';
  readonly health: Health;
  /** Container labels or EC2 tags, as data: never interpolated unchecked. */
  readonly labels: Readonly<Record<string, string>>;
  /** Image reference (docker) or AMI id (ec2), when known. */
  readonly image?: string;
  /** ISO time the backend started (container start, instance launch). */
  readonly since: string;
}

/** A backend's weight (render, map-image): the label `elastic.weight`, 0-256, default 1; 0 = no new connections. */
export const WEIGHT_LABEL = 'elastic.weight';
export const MAX_BACKEND_WEIGHT = 256;

/** The weight a backend is served with: its label when that is a whole number 0-256, else 1. */
export function backendWeight(b: Pick<Backend, 'labels'>): number {
  const text = b.labels[WEIGHT_LABEL];
  const n = text !== undefined && /^\d{1,3}$/.test(text) ? Number(text) : 1;
  return n <= MAX_BACKEND_WEIGHT ? n : 1;
}

/**
 * Maintenance by label (`elastic.maint=true`): render takes the backend out as a drain does (no
 * new requests, in-flight ones finish; its HAProxy slot stays empty for it) while it is listed
 * with the label; removing the label (a static file edit, a replaced container) brings it back.
 */
export const MAINT_LABEL = 'elastic.maint';
export const inMaint = (b: Pick<Backend, 'labels'>): boolean => b.labels[MAINT_LABEL] === 'true';

/** A backend set is sorted by id and contains no duplicate ids. */
export type BackendSet = readonly Backend[];

export function sortBackends(backends: Iterable<Backend>): BackendSet {
  const byId = new Map<string, Backend>();
  for (const b of backends) byId.set(b.id, b);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function endpoint(b: Pick<Backend, 'address' | 'port'>): string {
  return b.address.includes(':') ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`;
}

export interface BackendChange {
  readonly type: 'added' | 'removed' | 'changed';
  readonly backend: Backend;
  /** For `changed`: the fields that differ. */
  readonly fields?: readonly string[];
}

const comparedFields = ['name', 'service', 'address', 'address6', 'port', 'state', 'health', 'image'] as const;

function labelsEqual(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}

/** Pure diff of two backend sets, in id order. `since` is not a change (it only drifts in format). */
export function diffBackends(before: BackendSet, after: BackendSet): BackendChange[] {
  const old = new Map(before.map((b) => [b.id, b]));
  const changes: BackendChange[] = [];
  for (const b of after) {
    const prev = old.get(b.id);
    if (!prev) {
      changes.push({ type: 'added', backend: b });
      continue;
    }
    old.delete(b.id);
    const fields: string[] = comparedFields.filter((f) => prev[f] !== b[f]);
    if (!labelsEqual(prev.labels, b.labels)) fields.push('labels');
    if (fields.length > 0) changes.push({ type: 'changed', backend: b, fields });
  }
  for (const b of old.values()) changes.push({ type: 'removed', backend: b });
  return changes.sort((x, y) => (x.backend.id < y.backend.id ? -1 : x.backend.id > y.backend.id ? 1 : 0));
}

export function sameBackends(a: BackendSet, b: BackendSet): boolean {
  return a.length === b.length && diffBackends(a, b).length === 0;
}
