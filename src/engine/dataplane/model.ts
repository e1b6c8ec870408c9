import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { isPort } from '../model/validate.js';
import { MAX_BACKEND_WEIGHT } from '../model/backend.js';
import { DEFAULT_SEED } from './maglev.js';

/**
 * The data-plane model of `map-image`: plain readonly data, shared by the renderers (iptables,
 * nft), the applier, the state file and the commands. Only validated IPv4 and IPv6 addresses
 * (IPv6 in canonical form, as nft prints them), ports and mapping ids ever reach rule text; names,
 * labels and image references stay in the state file.
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

/** `198.18.0.5:80`, `[2001:2::5]:80` (an IPv6 address in brackets, so the port stays readable). */
export function endpointKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** An nft table family: `ip` holds the IPv4 side of every nft mapping, `ip6` the IPv6 side. */
export type NftFamily = 'ip' | 'ip6';
export const familyOf = (address: string): NftFamily => (address.includes(':') ? 'ip6' : 'ip');

/**
 * An IPv6 address in the one spelling nft and conntrack print (RFC 5952: lower case, the longest
 * run of zero groups as `::`), so that state, rules and kernel reads compare as text; an IPv4
 * address unchanged; anything else ''.
 */
export function canonicalAddress(address: string): string {
  const v = isIP(address);
  if (v === 4) return address;
  if (v !== 6 || address.includes('%')) return '';
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return '';
  }
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
  /** Sorted, unique, validated `address:port` targets that take new connections (weight >= 1); IPv6 ones only on nft. */
  readonly targets: ReadonlyArray<RuleTarget>;
  /**
   * The nft families the mapping is programmed in: `ip` unless its address is IPv6; `ip6` when
   * its address is IPv6, or it has none and some backend (serving, drained or weight 0) is IPv6.
   */
  readonly families: readonly NftFamily[];
  /** Set on a one-family view (familyMapping): only that family's targets. */
  readonly family?: NftFamily;
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
  const nft = spec.dataplane === 'nft';
  if (spec.address !== undefined && (canonicalAddress(spec.address) !== spec.address || (!nft && isIP(spec.address) !== 4))) throw new Error(`invalid mapping address for ${spec.id}`);
  const spread = spec.spread ?? 'random';
  if (!SPREADS.includes(spread)) throw new Error(`invalid spread for ${spec.id}`);
  const seed = spec.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) throw new Error(`invalid seed for ${spec.id}`);
  const affinityS = spec.affinityS;
  if (affinityS !== undefined && !(Number.isInteger(affinityS) && affinityS >= AFFINITY_TIMEOUT_S.min && affinityS <= AFFINITY_TIMEOUT_S.max)) throw new Error(`invalid affinity timeout for ${spec.id}`);
  const draining = new Set(entry.draining);
  const seen = new Map<string, RuleTarget>();
  let v6 = false;
  for (const b of entry.backends) {
    // IPv6 backends only on nft (iptables refuses them at declaration: docs/map-image.md, "IPv6").
    const family = isIP(b.address);
    if (!(family === 4 || (family === 6 && nft && canonicalAddress(b.address) === b.address)) || !isPort(b.port)) continue;
    if (family === 6) v6 = true;
    const weight = b.weight ?? 1;
    // Weight 0 is a drain by configuration: no new connections, its established ones continue.
    if (!Number.isInteger(weight) || weight < 1 || weight > MAX_BACKEND_WEIGHT) continue;
    const key = endpointKey(b.address, b.port);
    if (draining.has(key) || seen.has(key)) continue;
    seen.set(key, { address: b.address, port: b.port, hash: backendHash(spec.id, b.address, b.port), weight });
  }
  const targets = [...seen.values()].sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
  const families: NftFamily[] = spec.address === undefined ? (v6 ? ['ip', 'ip6'] : ['ip']) : [familyOf(spec.address)];
  return { id: spec.id, protocol: spec.protocol, port: spec.port, address: spec.address, spread, seed, ...(affinityS !== undefined ? { affinityS } : {}), targets, families };
}

/** The mapping as one nft family programs it (only that family's targets), or null when it has no part there. */
export function familyMapping(m: RuleMapping, family: NftFamily): RuleMapping | null {
  if (!m.families.includes(family)) return null;
  if (family === 'ip' && m.targets.every((t) => familyOf(t.address) === 'ip')) return m; // the IPv4-only mapping as it always was
  let byFamily = familyMappings.get(m);
  if (!byFamily) familyMappings.set(m, (byFamily = {}));
  return (byFamily[family] ??= { ...m, family, targets: m.targets.filter((t) => familyOf(t.address) === family) });
}

const familyMappings = new WeakMap<RuleMapping, Partial<Record<NftFamily, RuleMapping>>>();

/**
 * The endpoints drained and undrained with `key`: a dual-stack container is one backend id with an
 * IPv4 and an IPv6 endpoint, and either address stands for both (deploy knows its IPv4 address).
 */
export function drainGroup(entry: Pick<MappingEntry, 'backends'>, key: string): MappingBackend[] {
  const ids = new Set(entry.backends.filter((b) => endpointKey(b.address, b.port) === key && b.id.startsWith('docker:')).map((b) => b.id));
  return entry.backends.filter((b) => endpointKey(b.address, b.port) === key || ids.has(b.id));
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
  if (isIP(address) === 6) return backendAddress6Problem(address);
  if (isIP(address) !== 4) return 'not an IP address';
  const first = Number(address.split('.')[0]);
  if (first === 0) return 'an unspecified address (0.0.0.0/8)';
  if (first === 127) return 'a loopback address (127.0.0.0/8)';
  if (first >= 224 && first <= 239) return 'a multicast address (224.0.0.0/4)';
  if (first >= 240) return 'a reserved or broadcast address (240.0.0.0/4)';
  return '';
}

/**
 * The IPv6 counterpart: unspecified (::), loopback (::1), IPv4-mapped (::ffff:0:0/96: nft cannot
 * DNAT across families), link-local (fe80::/10: needs a zone) and multicast (ff00::/8).
 */
function backendAddress6Problem(address: string): string {
  const a = canonicalAddress(address);
  if (a === '') return 'not an IPv6 address nft can program (no zone: %)';
  if (a === '::') return 'the unspecified address (::)';
  if (a === '::1') return 'the loopback address (::1)';
  if (a.startsWith('::ffff:')) return 'an IPv4-mapped address (::ffff:0:0/96); give the IPv4 address';
  if (/^fe[89ab]/.test(a)) return 'a link-local address (fe80::/10)';
  if (a.startsWith('ff')) return 'a multicast address (ff00::/8)';
  return '';
}
