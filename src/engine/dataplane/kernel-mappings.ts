import { readTool, type ToolEnv } from './exec.js';
import { parseEndpoint } from '../model/validate.js';
import { endpointKey, isMappingId, type DataplaneKind, type MappingEntry, type MappingSpec, type MappingsState, type Protocol } from './model.js';
import type { Namespace } from './namespace.js';

/**
 * The kernel is the truth for what is programmed: every mapping's objects carry its id (nft
 * `spread_<proto>_<port>` maps, iptables `...SVC-<PROTO>-<PORT>` chains and `elastic:<id> A:P`
 * DNAT comments), in every elastic namespace (`ip elastic[_<h>]`, `ELASTIC-[<h>-]`). `list` and
 * `stop` read them, so a lost state file does not hide live rules, and a port another state
 * directory maps is seen before it is taken twice.
 */
export interface KernelMapping {
  /** The namespace's id: '' for the default state directory, else 6 hex (namespace.ts). */
  readonly namespace: string;
  readonly id: string;
  readonly dataplane: DataplaneKind;
  /** `address:port` DNAT targets, sorted. */
  readonly targets: readonly string[];
}

const key = (ns: string, id: string, plane: string) => `${ns}/${id}/${plane}`;

function collect(): { add: (ns: string, id: string, plane: DataplaneKind, target?: string) => void; done: () => KernelMapping[] } {
  const found = new Map<string, { namespace: string; id: string; dataplane: DataplaneKind; targets: Set<string> }>();
  return {
    add(ns, id, dataplane, target) {
      if (!isMappingId(id)) return;
      const k = key(ns, id, dataplane);
      const m = found.get(k) ?? { namespace: ns, id, dataplane, targets: new Set<string>() };
      found.set(k, m);
      if (target && (/^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/.test(target) || /^\[[0-9a-f:]{2,39}\]:\d{1,5}$/.test(target))) m.targets.add(target);
    },
    done: () => [...found.values()].map((m) => ({ ...m, targets: [...m.targets].sort() })).sort((a, b) => (key(a.namespace, a.id, a.dataplane) < key(b.namespace, b.id, b.dataplane) ? -1 : 1)),
  };
}

/** From `iptables-save -t nat`: SVC chains (a mapping, even with no backend) and DNAT targets. */
export function mappingsInIptablesSave(text: string): KernelMapping[] {
  const out = collect();
  for (const line of text.split('\n')) {
    const svc = /^:ELASTIC-(?:([0-9a-f]{6})-)?SVC-(TCP|UDP)-(\d+) /.exec(line);
    if (svc) out.add(svc[1] ?? '', `${svc[2]!.toLowerCase()}-${svc[3]}`, 'iptables');
    const be = /^(?:\[\d+:\d+\] )?-A ELASTIC-(?:([0-9a-f]{6})-)?BE-\S+ .*--comment "?elastic:((?:tcp|udp)-\d+) ([0-9.:]+)"? .*-j DNAT/.exec(line);
    if (be) out.add(be[1] ?? '', be[2]!, 'iptables', be[3]);
  }
  return out.done();
}

type NftMapItem = { family?: string; name?: string; table?: string; elem?: Array<[number, { concat?: Array<string | number> }]> };

/** The elastic spread maps (`ip` and `ip6`) of `nft -j list maps` (or of one `list map`), with the mapping each one is. */
function spreadMaps(text: string): Array<NftMapItem & { family: string; table: string; name: string; ns: string; id: string }> {
  const doc = JSON.parse(text) as { nftables?: Array<{ map?: NftMapItem }> };
  return (doc.nftables ?? []).flatMap(({ map: m }) => {
    const table = /^elastic(?:_([0-9a-f]{6}))?$/.exec(m?.table ?? '');
    const name = /^spread_(tcp|udp)_(\d+)$/.exec(m?.name ?? '');
    if (!m || (m.family !== 'ip' && m.family !== 'ip6') || !table || !name) return [];
    return [{ ...m, family: m.family, table: m.table!, name: m.name!, ns: table[1] ?? '', id: `${name[1]}-${name[2]}` }];
  });
}

/**
 * From `nft -j list maps` (or several reads: a terse list of every map, then some maps whole): every
 * elastic table's `spread_<proto>_<port>` map and the backends in its elements.
 */
export function mappingsInNftMaps(...texts: string[]): KernelMapping[] {
  const out = collect();
  for (const m of texts.flatMap(spreadMaps)) {
    out.add(m.ns, m.id, 'nft');
    for (const e of m.elem ?? []) {
      const c = Array.isArray(e) ? e[1]?.concat : undefined;
      if (c && c.length === 2) out.add(m.ns, m.id, 'nft', endpointKey(String(c[0]), Number(c[1])));
    }
  }
  return out.done();
}

/**
 * Every mapping of every elastic namespace the kernel holds (a missing tool reads as none).
 * `targetsOf` says which mappings' backends are wanted: the maps are listed without elements
 * (`nft -t`), then only those maps read whole. A hash mapping's map is 32,749 slots: reading every
 * namespace's in full took a second or more per `list` or declaration on a host with a few.
 */
export async function readKernelMappings(opts: ToolEnv = {}, targetsOf: (namespace: string, id: string) => boolean = () => true): Promise<KernelMapping[]> {
  const soft = (p: Promise<string | null>) => p.catch((err: unknown) => (/not found/.test((err as Error).message) ? null : Promise.reject(err)));
  const [ipt, names] = await Promise.all([soft(readTool('iptables-save', ['-t', 'nat'], opts)), soft(readTool('nft', ['-t', '-j', 'list', 'maps'], opts))]);
  const wanted = names ? spreadMaps(names).filter((m) => targetsOf(m.ns, m.id)) : [];
  // A map removed between the two reads reads as null ("No such file or directory"): listed, no targets.
  const whole = await Promise.all(wanted.map((m) => soft(readTool('nft', ['-j', 'list', 'map', m.family, m.table, m.name], opts))));
  return [...(ipt ? mappingsInIptablesSave(ipt) : []), ...(names ? mappingsInNftMaps(names, ...whole.filter((t): t is string => t !== null)) : [])];
}

export const inNamespace = (ns: Namespace) => (m: KernelMapping) => m.namespace === ns.id;

/**
 * For `list`: the mappings whose backends only the kernel can say: the namespace's own that its
 * state file no longer lists (lost), and other namespaces' mappings of ports it does list (conflicts).
 */
export function targetsUnknownTo(ns: Namespace, state: MappingsState): (namespace: string, id: string) => boolean {
  const listed = new Set(state.mappings.map((m) => m.spec.id));
  return (namespace, id) => (namespace === ns.id ? !listed.has(id) : listed.has(id));
}

/**
 * The state with the namespace's kernel-only mappings put back in (a lost or moved-aside state
 * file): what `stop` works on, so removing one mapping does not sweep the others as strays. An
 * adopted mapping has no image (`image: ''`): any declaration of its port takes it over.
 */
export function adoptFromKernel(state: MappingsState, own: readonly KernelMapping[], now = new Date().toISOString()): MappingsState {
  const known = new Set(state.mappings.map((m) => m.spec.id));
  const adopted: MappingEntry[] = [];
  for (const k of own) {
    if (known.has(k.id)) continue;
    known.add(k.id);
    const [protocol, port] = k.id.split('-') as [Protocol, string];
    const backends = k.targets.map((t) => {
      const { address, port: p } = parseEndpoint(t);
      return { id: `kernel:${t}`, name: t, address, port: p };
    });
    adopted.push({
      spec: { id: k.id, protocol, port: Number(port), image: '', containerPort: backends[0]?.port ?? 0, staticBackends: [], dataplane: k.dataplane, created: now },
      backends,
      draining: [],
      updated: now,
    });
  }
  if (adopted.length === 0) return state;
  return { ...state, mappings: [...state.mappings, ...adopted].sort((a, b) => (a.spec.id < b.spec.id ? -1 : 1)) };
}

/** A mapping known only from the kernel (adoptFromKernel): its declaration was lost. */
export const isAdopted = (spec: MappingSpec) => spec.image === '';
