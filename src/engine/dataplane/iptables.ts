import { COMMENT_PREFIX, HOOK_COMMENT, type RuleMapping } from './model.js';
import { DEFAULT_NAMESPACE, ownsChain, type Namespace } from './namespace.js';

/**
 * The iptables data plane, as pure functions: desired chains from mappings (render), the
 * `iptables-restore --noflush` text that turns the current state into the desired one (plan),
 * and the reader of `iptables-save` output (parse). Only chains of our namespace (ELASTIC-*, or
 * ELASTIC-<h>-* for another state directory, see namespace.ts) and jump rules to them carrying the
 * comment `elastic:hook` are ever written or deleted.
 *
 * nat:    PREROUTING/OUTPUT/POSTROUTING -> ELASTIC-PREROUTING/-OUTPUT/-POSTROUTING (hooks)
 *         ELASTIC-SVC-TCP-18300  statistic-random probability cascade, one jump per backend
 *         ELASTIC-BE-<hash>      one DNAT rule per backend: its counters are the backend's
 *         ELASTIC-HP-TCP-18300   hairpin: a backend reaching itself through the mapping is masqueraded
 * filter: DOCKER-USER (or FORWARD when its policy drops) -> ELASTIC-FORWARD: ACCEPT our DNATed flows
 */
export type IptTable = 'nat' | 'filter';

export interface IptHook {
  readonly table: IptTable;
  readonly builtin: string;
  readonly target: string;
}

/** Desired (or current) contents of our chains: chain name -> rule bodies (without `-A CHAIN`). */
export interface IptRuleset {
  readonly nat: ReadonlyMap<string, readonly string[]>;
  readonly filter: ReadonlyMap<string, readonly string[]>;
  readonly hooks: readonly IptHook[];
}

/** What the kernel holds, as read from iptables-save. */
export interface IptKernel {
  /** Our chains per table; rules are iptables-save's own spelling (not comparable to ours). */
  readonly chains: Record<IptTable, ReadonlyMap<string, readonly string[]>>;
  /** Per backend chain: the DNAT rule's packet and byte counters. */
  readonly counters: ReadonlyMap<string, { packets: number; bytes: number }>;
  /** Hook jump rules present: `table builtin target` -> how many. */
  readonly hooks: ReadonlyMap<string, number>;
  /** Built-in chains of the filter table and their policies (where to hook FORWARD). */
  readonly filterChains: ReadonlyMap<string, string>;
}

export const svcChain = (id: string, ns: Namespace = DEFAULT_NAMESPACE) => `${ns.chainPrefix}SVC-${id.toUpperCase()}`;
export const hairpinChain = (id: string, ns: Namespace = DEFAULT_NAMESPACE) => `${ns.chainPrefix}HP-${id.toUpperCase()}`;
/** 16 hex of the backend hash in the default namespace (27 chars); 10 in the others (28). */
export const backendChain = (hash: string, ns: Namespace = DEFAULT_NAMESPACE) => `${ns.chainPrefix}BE-${ns.id ? hash.slice(0, 10) : hash}`;
const comment = (text: string) => `-m comment --comment "${text}"`;
const hookKey = (h: IptHook) => `${h.table} ${h.builtin} ${h.target}`;

/** Where the FORWARD accept goes: Docker's DOCKER-USER, else FORWARD when its policy drops, else nowhere. */
export function forwardHookChain(filterChains: ReadonlyMap<string, string>): string | undefined {
  if (filterChains.has('DOCKER-USER')) return 'DOCKER-USER';
  return filterChains.get('FORWARD') === 'DROP' ? 'FORWARD' : undefined;
}

/** Probabilities printed like kube-proxy: enough digits that 1/n is right for thousands of backends. */
export function probability(i: number, n: number): string {
  return (1 / (n - i)).toFixed(10);
}

/**
 * The cascade's probabilities: rule i takes what is left with chance w_i / (w_i + ... + w_n), so
 * each backend gets its share of the weights (1/(n-i) when they are all equal).
 */
function cascade(weights: readonly number[]): (i: number) => string {
  if (weights.every((w) => w === weights[0])) return (i) => probability(i, weights.length);
  const rest = weights.map((_, i) => weights.slice(i).reduce((a, b) => a + b, 0));
  return (i) => (weights[i]! / rest[i]!).toFixed(10);
}

/**
 * Desired chains. `nat` mappings get DNAT rules; `forward` mappings (every data plane's, since the
 * FORWARD policy lives in iptables even when nft does the DNAT) get the FORWARD accept.
 */
export function renderIptables(nat: readonly RuleMapping[], forward: readonly RuleMapping[], forwardHook?: string, ns: Namespace = DEFAULT_NAMESPACE): IptRuleset {
  const P = ns.chainPrefix;
  const natChains = new Map<string, string[]>();
  const filterChains = new Map<string, string[]>();
  const hooks: IptHook[] = [];
  const sorted = [...nat].sort((a, b) => (a.id < b.id ? -1 : 1));
  if (sorted.length > 0) {
    const pre: string[] = [];
    const out: string[] = [];
    const post: string[] = [];
    for (const m of sorted) {
      const c = comment(`${COMMENT_PREFIX}${m.id}`);
      const proto = `-p ${m.protocol} -m ${m.protocol} --dport ${m.port}`;
      const svc = svcChain(m.id, ns);
      if (m.address) {
        pre.push(`-d ${m.address}/32 ${proto} ${c} -j ${svc}`);
        out.push(`-d ${m.address}/32 ${proto} ${c} -j ${svc}`);
      } else {
        pre.push(`${proto} -m addrtype --dst-type LOCAL ${c} -j ${svc}`);
        out.push(`! -d 127.0.0.0/8 ${proto} -m addrtype --dst-type LOCAL ${c} -j ${svc}`);
      }
      post.push(`-p ${m.protocol} -m conntrack --ctstate DNAT --ctorigdstport ${m.port} ${c} -j ${hairpinChain(m.id, ns)}`);
      const n = m.targets.length;
      const chance = cascade(m.targets.map((t) => t.weight));
      natChains.set(
        svc,
        m.targets.map((t, i) =>
          i < n - 1
            ? `${c} -m statistic --mode random --probability ${chance(i)} -j ${backendChain(t.hash, ns)}`
            : `${c} -j ${backendChain(t.hash, ns)}`,
        ),
      );
      natChains.set(
        hairpinChain(m.id, ns),
        m.targets.map((t) => `-s ${t.address}/32 -d ${t.address}/32 ${c} -j MASQUERADE`),
      );
      for (const t of m.targets) {
        natChains.set(backendChain(t.hash, ns), [
          `-p ${m.protocol} ${comment(`${COMMENT_PREFIX}${m.id} ${t.address}:${t.port}`)} -m ${m.protocol} -j DNAT --to-destination ${t.address}:${t.port}`,
        ]);
      }
    }
    natChains.set(`${P}PREROUTING`, pre);
    natChains.set(`${P}OUTPUT`, out);
    natChains.set(`${P}POSTROUTING`, post);
    hooks.push(
      { table: 'nat', builtin: 'PREROUTING', target: `${P}PREROUTING` },
      { table: 'nat', builtin: 'OUTPUT', target: `${P}OUTPUT` },
      { table: 'nat', builtin: 'POSTROUTING', target: `${P}POSTROUTING` },
    );
  }
  if (forward.length > 0 && forwardHook) {
    const rules = [...forward]
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((m) => `-p ${m.protocol} -m conntrack --ctstate DNAT --ctorigdstport ${m.port} ${comment(`${COMMENT_PREFIX}${m.id}`)} -j ACCEPT`);
    filterChains.set(`${P}FORWARD`, rules);
    hooks.push({ table: 'filter', builtin: forwardHook, target: `${P}FORWARD` });
  }
  return { nat: natChains, filter: filterChains, hooks };
}

export interface IptPlanInput {
  readonly desired: IptRuleset;
  /** Last applied by this process (cache): only differing chains are written. */
  readonly previous?: IptRuleset;
  /** What the kernel holds: chains to delete, hooks present, counters to carry over a rewrite. */
  readonly kernel: Pick<IptKernel, 'chains' | 'hooks' | 'counters'>;
}

/**
 * The restore text (for `iptables-restore --noflush --counters`), or '' when nothing changes.
 * Without a cache every desired chain is rewritten (drift repair) and backend chains carry their
 * counters; chains of ours that are not desired are flushed and deleted after every reference to
 * them is gone (hooks first, then the chains that jump to them are rewritten in the same batch).
 */
export function planIptables({ desired, previous, kernel }: IptPlanInput): string {
  const out: string[] = [];
  for (const table of ['nat', 'filter'] as const) {
    const want = desired[table];
    const have = kernel.chains[table];
    const prev = previous?.[table];
    const declare: string[] = [];
    const body: string[] = [];
    const remove: string[] = [];
    const wantedHooks = desired.hooks.filter((h) => h.table === table);
    const unhooks: string[] = [];
    for (const [key, count] of kernel.hooks) {
      const [t, builtin, target] = key.split(' ');
      if (t !== table) continue;
      const keep = wantedHooks.some((h) => hookKey(h) === key) ? 1 : 0;
      for (let i = keep; i < count; i++) unhooks.push(`-D ${builtin} ${comment(HOOK_COMMENT)} -j ${target}`);
    }
    for (const [chain, rules] of want) {
      const prevRules = prev?.get(chain);
      const unchanged = have.has(chain) && prevRules !== undefined && sameRules(prevRules, rules);
      if (unchanged) continue;
      declare.push(`:${chain} - [0:0]`);
      const carried = have.has(chain) ? kernel.counters.get(chain) : undefined;
      for (const r of rules) body.push(`${carried ? `[${carried.packets}:${carried.bytes}] ` : ''}-A ${chain} ${r}`);
    }
    for (const chain of have.keys()) {
      if (want.has(chain)) continue;
      declare.push(`:${chain} - [0:0]`);
      remove.push(`-X ${chain}`);
    }
    const hooksToAdd = wantedHooks
      .filter((h) => !kernel.hooks.has(hookKey(h)))
      .map((h) => `-I ${h.builtin} 1 ${comment(HOOK_COMMENT)} -j ${h.target}`);
    if (declare.length + hooksToAdd.length + unhooks.length === 0) continue;
    out.push(`*${table}`, ...declare, ...unhooks, ...body, ...hooksToAdd, ...remove, 'COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

/** Read `iptables-save -c` output (one or more tables): our chains, hooks and counters. */
export function parseIptablesSave(text: string, ns: Namespace = DEFAULT_NAMESPACE): IptKernel {
  const chains: Record<IptTable, Map<string, string[]>> = { nat: new Map(), filter: new Map() };
  const counters = new Map<string, { packets: number; bytes: number }>();
  const hooks = new Map<string, number>();
  const filterChains = new Map<string, string>();
  let table: string | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      table = line.slice(1);
      continue;
    }
    if (table !== 'nat' && table !== 'filter') continue;
    const decl = /^:(\S+) (\S+)/.exec(line);
    if (decl) {
      if (table === 'filter') filterChains.set(decl[1]!, decl[2]!);
      if (ownsChain(ns, decl[1]!)) chains[table].set(decl[1]!, []);
      continue;
    }
    const rule = /^(?:\[(\d+):(\d+)\] )?-A (\S+) (.*)$/.exec(line);
    if (!rule) continue;
    const [, pk, by, chain, rest] = rule as unknown as [string, string | undefined, string | undefined, string, string];
    if (ownsChain(ns, chain)) {
      chains[table].get(chain)?.push(rest);
      if (chain.startsWith(`${ns.chainPrefix}BE-`) && pk !== undefined) counters.set(chain, { packets: Number(pk), bytes: Number(by) });
      continue;
    }
    const hook = /--comment "?elastic:hook"? -j (\S+)$/.exec(rest);
    if (hook && ownsChain(ns, hook[1]!)) {
      const key = `${table} ${chain} ${hook[1]}`;
      hooks.set(key, (hooks.get(key) ?? 0) + 1);
    }
  }
  return { chains, counters, hooks, filterChains };
}

/** An empty desired ruleset: what `stop` of the last mapping converges to. */
export const EMPTY_IPT: IptRuleset = { nat: new Map(), filter: new Map(), hooks: [] };
