import { endpointKey, toRuleMapping, type MappingsState } from './model.js';
import { nftAffinity } from './nft.js';
import type { NftSession } from './nft-session.js';

/**
 * Client-ip affinity (`--affinity client-ip`, nft only): the map `aff_<id>_<timeout>` (client
 * address -> backend address . port) is filled by the packet path (nft.ts). An entry that points
 * at a backend that left the spread (removed, drained, weight 0) would keep sending that client's
 * new connections there until it times out, so such entries are deleted right after the change.
 * The map is read only then, never on an ordinary sync.
 */

/** Targets (`address:port`) that took new connections before and no longer do, per nft mapping with affinity. */
export function affinityLeavers(before: MappingsState, after: MappingsState): Array<{ map: string; gone: Set<string> }> {
  const out: Array<{ map: string; gone: Set<string> }> = [];
  for (const entry of after.mappings) {
    if (entry.spec.dataplane !== 'nft' || entry.spec.affinityS === undefined) continue;
    const old = before.mappings.find((m) => m.spec.id === entry.spec.id);
    if (!old) continue;
    const now = new Set(toRuleMapping(entry).targets.map((t) => endpointKey(t.address, t.port)));
    const gone = new Set(toRuleMapping(old).targets.map((t) => endpointKey(t.address, t.port)).filter((k) => !now.has(k)));
    if (gone.size > 0) out.push({ map: nftAffinity(entry.spec.id, entry.spec.affinityS), gone });
  }
  return out;
}

/** The client addresses of a listed affinity map whose backend is in `gone`. */
export function clientsOf(json: string, gone: ReadonlySet<string>): string[] {
  type Key = string | { elem?: { val?: string } };
  type Val = { concat?: Array<string | number> };
  const doc = JSON.parse(json) as { nftables?: Array<{ map?: { elem?: Array<[Key, Val]> } }> };
  const out: string[] = [];
  for (const item of doc.nftables ?? []) {
    for (const e of item.map?.elem ?? []) {
      if (!Array.isArray(e)) continue;
      const client = typeof e[0] === 'string' ? e[0] : e[0]?.elem?.val;
      const c = e[1]?.concat;
      if (typeof client === 'string' && /^[0-9.]+$/.test(client) && c?.length === 2 && gone.has(`${c[0]}:${c[1]}`)) out.push(client);
    }
  }
  return out;
}

/** Delete those entries: one transaction each (an entry can time out meanwhile; that one fails alone). Returns how many went. */
export async function purgeAffinity(nft: NftSession, table: string, map: string, gone: ReadonlySet<string>): Promise<number> {
  const text = await nft.listMap(table, map);
  if (!text) return 0;
  let purged = 0;
  for (const client of clientsOf(text, gone)) if ((await nft.apply(`delete element ip ${table} ${map} { ${client} }\n`)) === '') purged++;
  return purged;
}
