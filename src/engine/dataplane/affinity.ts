import { parseEndpoint } from '../model/validate.js';
import { endpointKey, toRuleMapping, type MappingsState, type NftFamily } from './model.js';
import { nftAffinity, nftAffinityPort } from './nft.js';
import type { NftSession } from './nft-session.js';

/**
 * Client-ip affinity (`--affinity client-ip`, nft only): the map `aff_<id>_<timeout>` (client
 * address -> backend address . port) is filled by the packet path (nft.ts). An entry that points
 * at a backend that left the spread (removed, drained, weight 0) would keep sending that client's
 * new connections there until it times out, so such entries are deleted right after the change.
 * The map is read only then, never on an ordinary sync.
 */

/** Targets (`address:port`) that took new connections before and no longer do, per nft mapping with affinity. */
export function affinityLeavers(before: MappingsState, after: MappingsState): Array<{ map: string; gone: Set<string>; families: readonly NftFamily[] }> {
  const out: Array<{ map: string; gone: Set<string>; families: readonly NftFamily[] }> = [];
  for (const entry of after.mappings) {
    if (entry.spec.dataplane !== 'nft' || entry.spec.affinityS === undefined) continue;
    const old = before.mappings.find((m) => m.spec.id === entry.spec.id);
    if (!old) continue;
    const rule = toRuleMapping(entry);
    const now = new Set(rule.targets.map((t) => endpointKey(t.address, t.port)));
    const gone = new Set(toRuleMapping(old).targets.map((t) => endpointKey(t.address, t.port)).filter((k) => !now.has(k)));
    // The map has the same name in each family's table; only the families that lost a target are read.
    const families = rule.families.filter((f) => [...gone].some((k) => k.startsWith('[') === (f === 'ip6')));
    if (gone.size > 0) out.push({ map: nftAffinity(entry.spec.id, entry.spec.affinityS), gone, families });
  }
  return out;
}

/**
 * The client addresses of a listed affinity map whose backend is in `gone`. The `ip6` table's map
 * holds only the backend address (its port is in a second map, nft.ts): a client whose backend
 * address left on any port is taken (at worst it picks anew).
 */
export function clientsOf(json: string, gone: ReadonlySet<string>): string[] {
  type Key = string | { elem?: { val?: string } };
  type Val = string | { concat?: Array<string | number> };
  const doc = JSON.parse(json) as { nftables?: Array<{ map?: { elem?: Array<[Key, Val]> } }> };
  const goneAddresses = new Set([...gone].map((k) => parseEndpoint(k).address));
  const out: string[] = [];
  for (const item of doc.nftables ?? []) {
    for (const e of item.map?.elem ?? []) {
      if (!Array.isArray(e)) continue;
      const client = typeof e[0] === 'string' ? e[0] : e[0]?.elem?.val;
      if (typeof client !== 'string' || !/^[0-9a-f.:]+$/i.test(client)) continue;
      const v = e[1];
      const c = typeof v === 'object' ? v?.concat : undefined;
      if (c?.length === 2 ? gone.has(endpointKey(String(c[0]), Number(c[1]))) : typeof v === 'string' && goneAddresses.has(v)) out.push(client);
    }
  }
  return out;
}

/** Delete those entries: one transaction each (an entry can time out meanwhile; that one fails alone). Returns how many went. */
export async function purgeAffinity(nft: NftSession, table: string, map: string, gone: ReadonlySet<string>, family: NftFamily = 'ip'): Promise<number> {
  const text = await nft.listMap(table, map, family);
  if (!text) return 0;
  let purged = 0;
  const maps = family === 'ip6' ? [map, nftAffinityPort(map)] : [map];
  for (const client of clientsOf(text, gone)) {
    if ((await nft.apply(maps.map((m) => `delete element ${family} ${table} ${m} { ${client} }\n`).join(''))) === '') purged++;
  }
  return purged;
}
