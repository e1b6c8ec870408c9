import { COMMENT_PREFIX, familyMapping, type NftFamily, type RuleMapping } from './model.js';
import { DEFAULT_NAMESPACE } from './namespace.js';
import { spreadMap } from './nft-spread.js';
import { slotTableChanges, type SlotTable } from './maglev.js';

export { assignSlots } from './nft-spread.js';

/**
 * The nftables data plane, as pure functions. Everything lives in one table, `ip elastic`, that
 * only elastic writes; it is deleted whole when the last mapping goes.
 *
 *   chain prerouting/output  (nat hooks, priority -101: before iptables-nft's nat)  -> svc_<id>
 *   chain svc_tcp_18300      dnat ip to numgen random mod N map @spread_tcp_18300   (O(1) per connection)
 *                            (or jhash <flow> mod M seed S: --spread hash, nft-spread.ts)
 *   map spread_tcp_18300     slot -> backend address . port (slots 0..N-1, stable across syncs; M Maglev slots)
 *   chain postrouting -> hp_<id>:
 *     ip daddr . tcp dport @cnt_<id>          per-backend counters (set elements with counters)
 *     ip saddr . ip daddr @hp_<id> masquerade  hairpin (a backend reaching itself through the mapping)
 *
 * Backends are elements, never chains or rules: adding one to a thousand is `add element` to
 * three sets and a new `mod N` in one one-rule chain. Replacing a rule that holds a 1,000-entry
 * anonymous map makes the kernel free the whole map, and every per-backend chain or named
 * counter is one more object nft fetches into its cache on each run; both were the cost of the
 * first layout (a verdict map of per-backend chains).
 *
 * The FORWARD accept (Docker's DROP policy) is not here: a drop in another table's base chain
 * cannot be overridden from ours, so it stays in iptables' DOCKER-USER (see iptables.ts).
 */
/** The default namespace's table; another state directory's is `elastic_<h>` (namespace.ts). */
export const NFT_TABLE = DEFAULT_NAMESPACE.nftTable;

export interface NftChain {
  /** Base-chain spec (`type nat hook prerouting priority -101; policy accept;`), or none. */
  readonly base?: string;
  readonly rules: readonly string[];
}

export type NftSetKind = 'map' | 'set';

/** A named map or set. For a map `elements[slot]` is the value of key `slot` (holes: drift). */
export interface NftSet {
  readonly kind: NftSetKind;
  readonly decl: string;
  readonly elements: ReadonlyArray<string | undefined>;
  /** A Maglev map's computed table (`elements` is made from it on demand): diffed by index. */
  readonly table?: SlotTable;
  /** Filled by the packet path (affinity): its elements are never planned. */
  readonly dynamic?: boolean;
}

export interface NftRuleset {
  readonly chains: ReadonlyMap<string, NftChain>;
  readonly sets: ReadonlyMap<string, NftSet>;
}

export interface NftKernel {
  readonly exists: boolean;
  readonly chains: ReadonlySet<string>;
  /** Maps and sets with their elements (as our text spells them). */
  readonly sets: ReadonlyMap<string, { kind: NftSetKind; elements: ReadonlyArray<string | undefined>; table?: SlotTable }>;
  /** Named counter objects (none in this layout: strays of the first one, to delete). */
  readonly objects: ReadonlySet<string>;
  /** Per-element counters of the `cnt_<id>` sets: set -> `address . port` -> counters. */
  readonly counters: ReadonlyMap<string, ReadonlyMap<string, { packets: number; bytes: number }>>;
}

export const EMPTY_NFT: NftRuleset = { chains: new Map(), sets: new Map() };
export const EMPTY_NFT_KERNEL: NftKernel = { exists: false, chains: new Set(), sets: new Map(), objects: new Set(), counters: new Map() };
const part = (id: string) => id.replace('-', '_');
export const nftSvc = (id: string) => `svc_${part(id)}`;
export const nftHairpin = (id: string) => `hp_${part(id)}`;
export const nftSpread = (id: string) => `spread_${part(id)}`;
export const nftCounters = (id: string) => `cnt_${part(id)}`;
/** The affinity map; its name carries the timeout, so a new timeout is a new map (a map's timeout cannot change). */
export const nftAffinity = (id: string, timeoutS: number) => `aff_${part(id)}_${timeoutS}`;
/** The `ip6` table's second affinity map: client -> backend port (see renderNft). */
export const nftAffinityPort = (affinityMap: string) => `${affinityMap}_port`;
/** An `address:port` target as a set element. */
export const nftTarget = (address: string, port: number) => `${address} . ${port}`;
const comment = (text: string) => `comment "${text}"`;

const BASE = {
  prerouting: 'type nat hook prerouting priority -101; policy accept;',
  output: 'type nat hook output priority -101; policy accept;',
  postrouting: 'type nat hook postrouting priority 99; policy accept;',
} as const;

/** What differs between the `ip` table and the `ip6` table (the same layout, names and comments). */
const FAMILY = {
  ip: { addr: 'ip', type: 'ipv4_addr', notLoopback: 'ip daddr != 127.0.0.0/8' },
  ip6: { addr: 'ip6', type: 'ipv6_addr', notLoopback: 'ip6 daddr != ::1' },
} as const;

/**
 * Desired objects of one table (`family`: the `ip` table holds the IPv4 side of every mapping,
 * the `ip6` table the IPv6 side of those that have one); `kernel` (what is programmed, read or
 * remembered) keeps the spread slots stable.
 */
export function renderNft(all: readonly RuleMapping[], kernel?: NftKernel, family: NftFamily = 'ip'): NftRuleset {
  const chains = new Map<string, NftChain>();
  const sets = new Map<string, NftSet>();
  const mappings = all.map((m) => familyMapping(m, family)).filter((m): m is RuleMapping => m !== null);
  if (mappings.length === 0) return { chains, sets };
  const { addr: ip, type, notLoopback } = FAMILY[family];
  const pre: string[] = [];
  const out: string[] = [];
  const post: string[] = [];
  for (const m of [...mappings].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const c = comment(`${COMMENT_PREFIX}${m.id}`);
    const svc = nftSvc(m.id);
    const match = `${m.protocol} dport ${m.port}`;
    if (m.address) {
      pre.push(`${ip} daddr ${m.address} ${match} jump ${svc} ${c}`);
      out.push(`${ip} daddr ${m.address} ${match} jump ${svc} ${c}`);
    } else {
      pre.push(`${match} fib daddr type local jump ${svc} ${c}`);
      out.push(`${notLoopback} ${match} fib daddr type local jump ${svc} ${c}`);
    }
    const hp = nftHairpin(m.id);
    const cnt = nftCounters(m.id);
    const spread = nftSpread(m.id);
    post.push(`meta l4proto ${m.protocol} ct status dnat ct original proto-dst ${m.port} jump ${hp} ${c}`);
    const n = m.targets.length;
    const targets = m.targets.map((t) => nftTarget(t.address, t.port));
    const map = spreadMap(m, () => kernel?.sets.get(spread)?.elements);
    // The key type is a 32-bit integer whatever picks it: numgen and jhash share the declaration.
    sets.set(spread, lazySet({ kind: 'map', decl: `typeof numgen random mod 2 : ${ip} daddr . ${m.protocol} dport;` }, map));
    sets.set(cnt, { kind: 'set', decl: `type ${type} . inet_service; counter;`, elements: [...targets].sort() });
    sets.set(hp, { kind: 'set', decl: `type ${type} . ${type};`, elements: [...new Set(m.targets.map((t) => `${t.address} . ${t.address}`))].sort() });
    const dnat = `meta l4proto ${m.protocol} dnat ${ip} to ${map.pick} map @${spread} ${c}`;
    // Postrouting sees the first packet of each DNATed connection: count it against its backend.
    const count = [`${ip} daddr . ${m.protocol} dport @${cnt} ${c}`, `${ip} saddr . ${ip} daddr @${hp} masquerade ${c}`];
    if (m.affinityS === undefined) {
      chains.set(svc, { rules: n === 0 ? [] : [dnat] });
      chains.set(hp, { rules: count });
    } else {
      // Client-ip affinity (as kube-proxy's nft mode): a client known to the map goes where it
      // went last, before the spread; every new connection records (and re-arms) its choice.
      const aff = nftAffinity(m.id, m.affinityS);
      const dynamic = (decl: string) => ({ kind: 'map' as const, decl: `${decl}; flags dynamic,timeout; timeout ${m.affinityS}s; size 262144;`, elements: [], dynamic: true });
      if (family === 'ip') {
        sets.set(aff, dynamic(`type ${type} : ${type} . inet_service`));
        chains.set(svc, { rules: n === 0 ? [] : [`meta l4proto ${m.protocol} dnat ip to ip saddr map @${aff} ${c}`, dnat] });
        chains.set(hp, { rules: [`update @${aff} { ip saddr : ip daddr . ${m.protocol} dport } ${c}`, ...count] });
      } else {
        // nft 1.0.6 aborts on `update @m { ip6 saddr : ip6 daddr . tcp dport }` (netlink_linearize.c:
        // "dreg < ctx->reg_low"): the IPv6 side keeps address and port in two maps, written by one
        // rule; a client found in one and not the other (one expired first) falls through to the spread.
        const port = nftAffinityPort(aff);
        sets.set(aff, dynamic(`type ${type} : ${type}`));
        sets.set(port, dynamic('type ipv6_addr : inet_service'));
        chains.set(svc, { rules: n === 0 ? [] : [`meta l4proto ${m.protocol} dnat ip6 to ip6 saddr map @${aff} : ip6 saddr map @${port} ${c}`, dnat] });
        chains.set(hp, { rules: [`update @${aff} { ip6 saddr : ip6 daddr } update @${port} { ip6 saddr : ${m.protocol} dport } ${c}`, ...count] });
      }
    }
  }
  chains.set('prerouting', { base: BASE.prerouting, rules: pre });
  chains.set('output', { base: BASE.output, rules: out });
  chains.set('postrouting', { base: BASE.postrouting, rules: post });
  return { chains, sets };
}

/**
 * The `nft -f` text from the kernel's state to the desired one ('' when nothing changes): one
 * transaction. Chains that differ from what this process applied (`previous`; all of them
 * without it) are flushed and refilled, so the same command run twice never duplicates a rule.
 * Maps and sets change element by element against the kernel's elements, so a counter set keeps
 * its counts. Removed objects go last, when nothing refers to them any more.
 */
export function planNft(desired: NftRuleset, kernel: NftKernel, previous?: NftRuleset, table = NFT_TABLE, family: NftFamily = 'ip'): string {
  const T = `${family} ${table}`;
  if (desired.chains.size === 0) return kernel.exists ? `delete table ${T}\n` : '';
  const lines: string[] = [];
  const write = [...desired.chains].filter(([name, chain]) => {
    const before = previous?.chains.get(name);
    return !(kernel.chains.has(name) && before && before.base === chain.base && sameList(before.rules, chain.rules));
  });
  // Everything exists before anything refers to it: declarations, elements, then rules.
  for (const [name, chain] of write) if (!kernel.chains.has(name)) lines.push(`add chain ${T} ${name}${chain.base ? ` { ${chain.base} }` : ''}`);
  for (const [name, set] of desired.sets) {
    const have = kernel.sets.get(name);
    if (have && have.kind !== set.kind) throw new Error(`nft ${name} is a ${have.kind}, expected a ${set.kind}`);
    if (!have) lines.push(`add ${set.kind} ${T} ${name} { ${set.decl} }`);
    if (!set.dynamic) lines.push(...planElements(T, name, set, have ?? { elements: [] }));
  }
  for (const [name, chain] of write) {
    if (kernel.chains.has(name)) lines.push(`flush chain ${T} ${name}`);
    for (const r of chain.rules) lines.push(`add rule ${T} ${name} ${r}`);
  }
  const gone = [...kernel.chains].filter((n) => !desired.chains.has(n));
  for (const name of gone) lines.push(`flush chain ${T} ${name}`);
  for (const [name, have] of kernel.sets) if (!desired.sets.has(name)) lines.push(`delete ${have.kind} ${T} ${name}`);
  for (const name of gone) lines.push(`delete chain ${T} ${name}`);
  for (const name of kernel.objects) lines.push(`delete counter ${T} ${name}`);
  if (lines.length === 0) return '';
  return `${kernel.exists ? '' : `add table ${T}\n`}${lines.join('\n')}\n`;
}

/** Element changes of one map (by slot) or set (by key) from `had` to `set.elements`. */
function planElements(T: string, name: string, set: NftSet, had: { elements: ReadonlyArray<string | undefined>; table?: SlotTable }): string[] {
  const del: string[] = [];
  const put: string[] = [];
  if (set.table && had.table && set.table.slots.length === had.table.slots.length) {
    // Both computed (this process applied `had`): compare the tables by index, not 32,749 strings.
    for (const s of slotTableChanges(had.table, set.table)) {
      if (had.table.slots[s]! >= 0) del.push(String(s));
      const now = set.table.slots[s]!;
      if (now >= 0) put.push(`${s} : ${set.table.keys[now]}`);
    }
  } else if (set.kind === 'map') {
    const have = had.elements;
    for (let i = 0; i < Math.max(have.length, set.elements.length); i++) {
      if (have[i] === set.elements[i]) continue;
      if (have[i] !== undefined) del.push(String(i));
      if (set.elements[i] !== undefined) put.push(`${i} : ${set.elements[i]}`);
    }
  } else {
    const have = new Set(had.elements);
    const wanted = new Set(set.elements);
    del.push(...[...have].filter((k): k is string => k !== undefined && !wanted.has(k)));
    put.push(...[...wanted].filter((k): k is string => k !== undefined && !have.has(k)));
  }
  return [...(del.length ? [`delete element ${T} ${name} { ${del.join(', ')} }`] : []), ...(put.length ? [`add element ${T} ${name} { ${put.join(', ')} }`] : [])];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

type JsonValue = string | number | { concat?: JsonValue[]; elem?: { val: JsonValue; counter?: { packets?: number; bytes?: number } } } | JsonValue[];

/** A JSON element value in our text's spelling: `198.18.0.5 . 8080`. */
function elementText(v: JsonValue): string {
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.map(elementText).join(' . ');
  if (v.concat) return v.concat.map(elementText).join(' . ');
  if (v.elem) return elementText(v.elem.val);
  return JSON.stringify(v);
}

/** Read `nft -j list table ip elastic` (or `ip6`): chains, maps and sets with elements, counters. */
export function parseNftJson(text: string, table = NFT_TABLE, family: NftFamily = 'ip'): NftKernel {
  type Item = { name?: string; table?: string; family?: string; elem?: JsonValue[] };
  const doc = JSON.parse(text) as { nftables?: Array<Record<string, Item>> };
  const chains = new Set<string>();
  const sets = new Map<string, { kind: NftSetKind; elements: Array<string | undefined> }>();
  const objects = new Set<string>();
  const counters = new Map<string, Map<string, { packets: number; bytes: number }>>();
  let exists = false;
  const ours = (o: Item | undefined): o is Item & { name: string } => Boolean(o?.name && o.table === table && o.family === family);
  for (const item of doc.nftables ?? []) {
    if (item.table && item.table.name === table && item.table.family === family) exists = true;
    if (ours(item.chain)) chains.add(item.chain.name);
    if (ours(item.counter)) objects.add(item.counter.name);
    for (const kind of ['map', 'set'] as const) {
      const s = item[kind];
      if (!ours(s)) continue;
      const elements: Array<string | undefined> = [];
      const per = new Map<string, { packets: number; bytes: number }>();
      for (const e of s.elem ?? []) {
        if (kind === 'map' && Array.isArray(e)) {
          const slot = Number(elementText(e[0]!));
          if (Number.isInteger(slot) && slot >= 0 && slot < 1_000_000) elements[slot] = elementText(e[1]!);
          continue;
        }
        const key = elementText(e);
        elements.push(key);
        const c = typeof e === 'object' && !Array.isArray(e) ? e.elem?.counter : undefined;
        if (c) per.set(key, { packets: c.packets ?? 0, bytes: c.bytes ?? 0 });
      }
      sets.set(s.name, { kind, elements });
      if (per.size > 0 || s.name.startsWith('cnt_')) counters.set(s.name, per);
    }
  }
  return { exists, chains, sets, objects, counters };
}

/** The kernel view implied by what this process applied last (cache path: no kernel read). */
export function nftKernelFrom(previous: NftRuleset): NftKernel {
  return {
    exists: previous.chains.size > 0,
    chains: new Set(previous.chains.keys()),
    sets: new Map([...previous.sets].map(([n, s]) => [n, lazySet({ kind: s.kind }, s)])),
    objects: new Set(),
    counters: new Map(),
  };
}

/** `base` with `from`'s elements and table, the elements read only when asked for (a Maglev map's are made on demand). */
function lazySet<T extends object>(base: T, from: { readonly elements: ReadonlyArray<string | undefined>; readonly table?: SlotTable }): T & { readonly elements: ReadonlyArray<string | undefined>; readonly table?: SlotTable } {
  return Object.defineProperties({ ...base, ...(from.table ? { table: from.table } : {}) }, { elements: { get: () => from.elements, enumerable: true } }) as T & { elements: ReadonlyArray<string | undefined>; table?: SlotTable };
}
