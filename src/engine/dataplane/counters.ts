import { readTool, type ToolEnv } from './exec.js';
import { backendChain, parseIptablesSave } from './iptables.js';
import { nftCounters, nftTarget, parseNftJson } from './nft.js';
import { namespaceOfEnv, type Namespace } from './namespace.js';
import { endpointKey, familyOf, toRuleMapping, type MappingsState, type NftFamily } from './model.js';

/**
 * Per-backend packet and byte counters, straight from the kernel: the DNAT rule of each backend's
 * own chain (iptables) or its element of the mapping's counter set (nft, counted in nat
 * postrouting). Counts are of the packets that went through the nat hooks: for TCP, the first
 * packet of each connection (so packets = connections).
 */
export interface BackendCounters {
  readonly packets: number;
  readonly bytes: number;
}

/** mapping id -> `address:port` -> counters. Missing objects (drift, a crash) count as absent. */
export type CountersByMapping = Map<string, Map<string, BackendCounters>>;

/** `ns`: the state directory's kernel objects (default: the one `env` points at). */
export async function readBackendCounters(state: MappingsState, opts: ToolEnv & { ns?: Namespace } = {}): Promise<CountersByMapping> {
  const ns = opts.ns ?? namespaceOfEnv(opts.env ?? process.env);
  const out: CountersByMapping = new Map();
  const wants = (kind: string) => state.mappings.some((m) => m.spec.dataplane === kind);
  const ipt = wants('iptables') ? parseIptablesSave((await readTool('iptables-save', ['-c', '-t', 'nat'], opts)) ?? '', ns) : undefined;
  // The counter sets only (`list sets`, not the table): a hash mapping's 32,749-slot spread map
  // would be most of a table read (0.3-1.1 s of nft time), and no counter is in it.
  const nftRead = async (family: NftFamily) => {
    const text = await readTool('nft', ['-j', 'list', 'sets', 'table', family, ns.nftTable], opts);
    return text ? parseNftJson(text, ns.nftTable, family) : undefined;
  };
  const nft = wants('nft') ? await nftRead('ip') : undefined;
  const nft6 = state.mappings.some((m) => m.spec.dataplane === 'nft' && toRuleMapping(m).families.includes('ip6')) ? await nftRead('ip6') : undefined;
  for (const entry of state.mappings) {
    const per = new Map<string, BackendCounters>();
    for (const t of toRuleMapping(entry).targets) {
      const table = familyOf(t.address) === 'ip6' ? nft6 : nft;
      const c = entry.spec.dataplane === 'nft' ? table?.counters.get(nftCounters(entry.spec.id))?.get(nftTarget(t.address, t.port)) : ipt?.counters.get(backendChain(t.hash, ns));
      if (c) per.set(endpointKey(t.address, t.port), c);
    }
    out.set(entry.spec.id, per);
  }
  return out;
}
