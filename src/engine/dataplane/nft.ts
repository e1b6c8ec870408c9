import { COMMENT_PREFIX, type RuleMapping } from './model.js';

/**
 * The nftables data plane, as pure functions. Everything lives in one table, `ip elastic`, that
 * only elastic writes; it is deleted whole when the last mapping goes.
 *
 *   chain prerouting/output   (nat hooks, priority -101: before iptables-nft's nat)  -> svc_<id>
 *   chain svc_tcp_18300       numgen random mod N vmap { 0 : jump be_<hash>, ... }  (O(1) per connection)
 *   chain be_<hash>           one DNAT rule counting into the named counter be_<hash>
 *   counter be_<hash>         per-backend packets/bytes; a named object, so rewriting rules keeps it
 *   chain postrouting -> hp_<id>  hairpin masquerade (a backend reaching itself through the mapping)
 *
 * The FORWARD accept (Docker's DROP policy) is not here: a drop in another table's base chain
 * cannot be overridden from ours, so it stays in iptables' DOCKER-USER (see iptables.ts).
 */
export const NFT_TABLE = 'elastic';
const T = `ip ${NFT_TABLE}`;

export interface NftChain {
  /** Base-chain spec (`type nat hook prerouting priority -101; policy accept;`), or none. */
  readonly base?: string;
  readonly rules: readonly string[];
}

export interface NftRuleset {
  readonly chains: ReadonlyMap<string, NftChain>;
  readonly counters: ReadonlySet<string>;
}

export interface NftKernel {
  readonly exists: boolean;
  readonly chains: ReadonlySet<string>;
  readonly counters: ReadonlyMap<string, { packets: number; bytes: number }>;
}

export const EMPTY_NFT: NftRuleset = { chains: new Map(), counters: new Set() };
export const nftSvc = (id: string) => `svc_${id.replace('-', '_')}`;
export const nftHairpin = (id: string) => `hp_${id.replace('-', '_')}`;
export const nftBackend = (hash: string) => `be_${hash}`;
const comment = (text: string) => `comment "${text}"`;

const BASE = {
  prerouting: 'type nat hook prerouting priority -101; policy accept;',
  output: 'type nat hook output priority -101; policy accept;',
  postrouting: 'type nat hook postrouting priority 99; policy accept;',
} as const;

export function renderNft(mappings: readonly RuleMapping[]): NftRuleset {
  const chains = new Map<string, NftChain>();
  const counters = new Set<string>();
  if (mappings.length === 0) return { chains, counters };
  const pre: string[] = [];
  const out: string[] = [];
  const post: string[] = [];
  for (const m of [...mappings].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const c = comment(`${COMMENT_PREFIX}${m.id}`);
    const svc = nftSvc(m.id);
    const match = `${m.protocol} dport ${m.port}`;
    if (m.address) {
      pre.push(`ip daddr ${m.address} ${match} jump ${svc} ${c}`);
      out.push(`ip daddr ${m.address} ${match} jump ${svc} ${c}`);
    } else {
      pre.push(`${match} fib daddr type local jump ${svc} ${c}`);
      out.push(`ip daddr != 127.0.0.0/8 ${match} fib daddr type local jump ${svc} ${c}`);
    }
    post.push(`meta l4proto ${m.protocol} ct status dnat ct original proto-dst ${m.port} jump ${nftHairpin(m.id)} ${c}`);
    const n = m.targets.length;
    const svcRules =
      n === 0
        ? []
        : n === 1
          ? [`jump ${nftBackend(m.targets[0]!.hash)} ${c}`]
          : [`numgen random mod ${n} vmap { ${m.targets.map((t, i) => `${i} : jump ${nftBackend(t.hash)}`).join(', ')} } ${c}`];
    chains.set(svc, { rules: svcRules });
    chains.set(nftHairpin(m.id), {
      rules: n === 0 ? [] : [`ip saddr . ip daddr { ${m.targets.map((t) => `${t.address} . ${t.address}`).join(', ')} } masquerade ${c}`],
    });
    for (const t of m.targets) {
      const name = nftBackend(t.hash);
      counters.add(name);
      chains.set(name, {
        rules: [`meta l4proto ${m.protocol} counter name "${name}" dnat to ${t.address}:${t.port} ${comment(`${COMMENT_PREFIX}${m.id} ${t.address}:${t.port}`)}`],
      });
    }
  }
  chains.set('prerouting', { base: BASE.prerouting, rules: pre });
  chains.set('output', { base: BASE.output, rules: out });
  chains.set('postrouting', { base: BASE.postrouting, rules: post });
  return { chains, counters };
}

/**
 * The `nft -f` text from the current state to the desired one ('' when nothing changes): one
 * transaction. Changed chains are flushed and refilled (so the same command run twice never
 * duplicates a rule); removed chains are flushed first and deleted after, so references between
 * them do not matter; counters of kept backends are never touched.
 */
export function planNft(desired: NftRuleset, kernel: NftKernel, previous?: NftRuleset): string {
  if (desired.chains.size === 0) return kernel.exists ? `delete table ${T}\n` : '';
  const lines: string[] = [];
  for (const name of desired.counters) if (!kernel.counters.has(name)) lines.push(`add counter ${T} ${name}`);
  // Every chain exists before any rule jumps to it: declarations first, then contents.
  const write = [...desired.chains].filter(([name, chain]) => {
    const before = previous?.chains.get(name);
    return !(kernel.chains.has(name) && before && sameChain(before, chain));
  });
  for (const [name, chain] of write) if (!kernel.chains.has(name)) lines.push(`add chain ${T} ${name}${chain.base ? ` { ${chain.base} }` : ''}`);
  for (const [name, chain] of write) {
    if (kernel.chains.has(name)) lines.push(`flush chain ${T} ${name}`);
    for (const r of chain.rules) lines.push(`add rule ${T} ${name} ${r}`);
  }
  const gone = [...kernel.chains].filter((n) => !desired.chains.has(n));
  for (const name of gone) lines.push(`flush chain ${T} ${name}`);
  for (const name of gone) lines.push(`delete chain ${T} ${name}`);
  for (const name of kernel.counters.keys()) if (!desired.counters.has(name)) lines.push(`delete counter ${T} ${name}`);
  if (lines.length === 0) return '';
  return `${kernel.exists ? '' : `add table ${T}\n`}${lines.join('\n')}\n`;
}

function sameChain(a: NftChain, b: NftChain): boolean {
  return a.base === b.base && a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);
}

/** Read `nft -j list table ip elastic` (chains and named counters). */
export function parseNftJson(text: string): NftKernel {
  const doc = JSON.parse(text) as { nftables?: Array<Record<string, { name?: string; table?: string; family?: string; packets?: number; bytes?: number }>> };
  const chains = new Set<string>();
  const counters = new Map<string, { packets: number; bytes: number }>();
  let exists = false;
  for (const item of doc.nftables ?? []) {
    const table = item.table;
    if (table && table.name === NFT_TABLE && table.family === 'ip') exists = true;
    const chain = item.chain;
    if (chain?.name && chain.table === NFT_TABLE && chain.family === 'ip') chains.add(chain.name);
    const counter = item.counter;
    if (counter?.name && counter.table === NFT_TABLE && counter.family === 'ip') {
      counters.set(counter.name, { packets: counter.packets ?? 0, bytes: counter.bytes ?? 0 });
    }
  }
  return { exists, chains, counters };
}

/** The kernel view implied by what this process applied last (cache path: no kernel read). */
export function nftKernelFrom(previous: NftRuleset): NftKernel {
  return {
    exists: previous.chains.size > 0,
    chains: new Set(previous.chains.keys()),
    counters: new Map([...previous.counters].map((n) => [n, { packets: 0, bytes: 0 }])),
  };
}
