import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { isPort } from '../model/validate.js';
import { MAX_BACKEND_WEIGHT } from '../model/backend.js';
import { DEFAULT_SEED } from './maglev.js';

/**
 * The data-plane model of `map-image`: plain readonly data, shared by the renderers (iptables,
 * nft), the applier, the state file and the commands. Only validated IPv4 addresses, ports and
 * mapping ids ever reach rule text; names, labels and image references stay in the state file.
 */
export type Protocol = 'tcp' | 'udp';
export type DataplaneKind = 'iptables' | 'nft';
/** How a new connection picks its backend: `numgen random`, or a Maglev table keyed by the flow's hash (maglev.ts). */
export type Spread = 'random' | 'hash';
export const SPREADS: readonly Spread[] = ['random', 'hash'];
/** `--affinity-timeout` range, seconds (kube-proxy's sessionAffinity allows up to a day too). */
export const AFFINITY_TIMEOUT_S = { min: 1, max: 86_400, default: 10_800 } as const;
/** Seeds are 32-bit: `--seed` 0-4294967295. */
export const MAX_SEED = 0xffffffff;

/** What the operator declared: "PORT/PROTO on this host spreads over the containers of IMAGE". */
export interface MappingSpec {
  /** `<proto>-<port>`, e.g. `tcp-18300`: in every rule comment, chain name and socket name. */
  readonly id: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** LB address to match; undefined = any local address (except 127.0.0.0/8, see docs). */
  readonly address?: string;
  readonly image: string;
  readonly containerPort: number;
  readonly network?: string;
  readonly staticBackends: readonly string[];
  readonly dataplane: DataplaneKind;
  /** Absent in state files written before issue 18: random. */
  readonly spread?: Spread;
  /** The hash seed (`spread: hash`); absent = DEFAULT_SEED, the same on every host. */
  readonly seed?: number;
  /** `--affinity client-ip`: a client address keeps its backend while it comes back within this many seconds. */
  readonly affinityS?: number;
  readonly created: string;
}

/** A backend as programmed: the address and port are what reach the kernel; name is for display. */
export interface MappingBackend {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** 0-256 (the elastic.weight label or `@W`); absent = 1; 0 = no new connections, established ones continue. */
  readonly weight?: number;
}

export interface MappingEntry {
  readonly spec: MappingSpec;
  readonly backends: readonly MappingBackend[];
  /** Endpoints taken out of the DNAT set by a drain (deploy's rolling update); kept until gone. */
  readonly draining: readonly string[];
  readonly updated: string;
}

/** The `mappings` state key. `generation` grows with every write (cache validation). */
export interface MappingsState {
  readonly v: 1;
  readonly generation: number;
  readonly mappings: readonly MappingEntry[];
}

export const EMPTY_STATE: MappingsState = { v: 1, generation: 0, mappings: [] };
export const STATE_KEY = 'mappings';
export const COMMENT_PREFIX = 'elastic:';
export const HOOK_COMMENT = 'elastic:hook';

export function mappingId(protocol: Protocol, port: number): string {
  return `${protocol}-${port}`;
}

export const MAPPING_ID_RE = /^(tcp|udp)-([1-9]\d{0,4})$/;

export function isMappingId(id: string): boolean {
  const m = MAPPING_ID_RE.exec(id);
  return Boolean(m && isPort(Number(m[2])));
}

export function endpointKey(address: string, port: number): string {
  return `${address}:${port}`;
}

/** Stable per-backend object name part: the same backend keeps its chain (and counters) across syncs. */
export function backendHash(mapping: string, address: string, port: number): string {
  const text = `${mapping} ${endpointKey(address, port)}`;
  let h = backendHashes.get(text);
  if (h === undefined) {
    // Remembered (bounded): a sync of 1,000 backends would otherwise hash all of them again.
    if (backendHashes.size >= 65_536) backendHashes.clear();
    h = createHash('sha256').update(text).digest('hex').slice(0, 16);
    backendHashes.set(text, h);
  }
  return h;
}

const backendHashes = new Map<string, string>();

/** One mapping reduced to what the kernel sees: the renderers' input. */
export interface RuleMapping {
  readonly id: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly address?: string;
  readonly spread: Spread;
  readonly seed: number;
  /** Client-ip affinity timeout in seconds; absent = none. */
  readonly affinityS?: number;
  /** Sorted, unique, validated `address:port` targets that take new connections (weight >= 1). */
  readonly targets: ReadonlyArray<RuleTarget>;
}

export interface RuleTarget {
  readonly address: string;
  readonly port: number;
  readonly hash: string;
  readonly weight: number;
}

/**
 * The only gate between state and rule text: ids, addresses and ports are re-validated here, so a
 * state file edited by hand (or a bug upstream) cannot put anything else into a rule.
 */
export function toRuleMapping(entry: Pick<MappingEntry, 'spec' | 'backends' | 'draining'>): RuleMapping {
  // Entries are immutable: one sync asks for the same entry's targets several times (nat, the
  // FORWARD accept, conntrack cleanup), and each costs a hash per backend.
  const known = ruleMappings.get(entry);
  if (known) return known;
  const r = computeRuleMapping(entry);
  ruleMappings.set(entry, r);
  return r;
}

const ruleMappings = new WeakMap<object, RuleMapping>();

function computeRuleMapping(entry: Pick<MappingEntry, 'spec' | 'backends' | 'draining'>): RuleMapping {
  const { spec } = entry;
  if (!isMappingId(spec.id) || spec.id !== mappingId(spec.protocol, spec.port)) throw new Error(`invalid mapping id ${JSON.stringify(spec.id)}`);
  if (spec.address !== undefined && isIP(spec.address) !== 4) throw new Error(`invalid mapping address for ${spec.id}`);
  const spread = spec.spread ?? 'random';
  if (!SPREADS.includes(spread)) throw new Error(`invalid spread for ${spec.id}`);
  const seed = spec.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) throw new Error(`invalid seed for ${spec.id}`);
  const affinityS = spec.affinityS;
  if (affinityS !== undefined && !(Number.isInteger(affinityS) && affinityS >= AFFINITY_TIMEOUT_S.min && affinityS <= AFFINITY_TIMEOUT_S.max)) throw new Error(`invalid affinity timeout for ${spec.id}`);
  const draining = new Set(entry.draining);
  const seen = new Map<string, RuleTarget>();
  for (const b of entry.backends) {
    if (isIP(b.address) !== 4 || !isPort(b.port)) continue;
    const weight = b.weight ?? 1;
    // Weight 0 is a drain by configuration: no new connections, its established ones continue.
    if (!Number.isInteger(weight) || weight < 1 || weight > MAX_BACKEND_WEIGHT) continue;
    const key = endpointKey(b.address, b.port);
    if (draining.has(key) || seen.has(key)) continue;
    seen.set(key, { address: b.address, port: b.port, hash: backendHash(spec.id, b.address, b.port), weight });
  }
  const targets = [...seen.values()].sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
  return { id: spec.id, protocol: spec.protocol, port: spec.port, address: spec.address, spread, seed, ...(affinityS !== undefined ? { affinityS } : {}), targets };
}

/**
 * Two specs map the same port to the same thing: a re-declaration updates it (static backends,
 * address, network, data plane) instead of failing as "already mapped".
 */
export function sameTarget(a: MappingSpec, b: MappingSpec): boolean {
  return a.id === b.id && a.image === b.image && a.containerPort === b.containerPort;
}

/** Two specs declare exactly the same mapping (re-running the same command reconciles). */
export function sameSpec(a: MappingSpec, b: MappingSpec): boolean {
  return (
    a.id === b.id &&
    a.address === b.address &&
    a.image === b.image &&
    a.containerPort === b.containerPort &&
    a.network === b.network &&
    a.dataplane === b.dataplane &&
    (a.spread ?? 'random') === (b.spread ?? 'random') &&
    (a.seed ?? DEFAULT_SEED) === (b.seed ?? DEFAULT_SEED) &&
    a.affinityS === b.affinityS &&
    a.staticBackends.join(',') === b.staticBackends.join(',')
  );
}

/**
 * Why an IPv4 address cannot be a DNAT backend ('' when it can): "this network" (0/8), loopback
 * (127/8: DNAT to it needs route_localnet, see docs/map-image.md), multicast (224/4) and the
 * reserved and broadcast range (240/4, 255.255.255.255) are accepted by the kernel and never answer.
 */
export function backendAddressProblem(address: string): string {
  if (isIP(address) !== 4) return 'not an IPv4 address';
  const first = Number(address.split('.')[0]);
  if (first === 0) return 'an unspecified address (0.0.0.0/8)';
  if (first === 127) return 'a loopback address (127.0.0.0/8)';
  if (first >= 224 && first <= 239) return 'a multicast address (224.0.0.0/4)';
  if (first >= 240) return 'a reserved or broadcast address (240.0.0.0/4)';
  return '';
}
