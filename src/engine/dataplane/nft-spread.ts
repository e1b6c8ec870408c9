import { maglevTable, maglevTableSize, type SlotTable } from './maglev.js';
import type { RuleMapping } from './model.js';

/**
 * The spread map of one mapping (`spread_<id>`: slot -> backend) and the expression that picks a
 * slot for a new connection. Two layouts share the map:
 *
 *   random, equal weights:   numgen random mod N, slots 0..N-1 (assignSlots: stable, dense)
 *   hash (or unequal weights): a Maglev table of M slots (maglev.ts), picked by
 *       jhash ip saddr . th sport . ip daddr . th dport . meta l4proto mod M seed S    (hash)
 *       numgen random mod M                                                            (random, weighted)
 *
 * The Maglev table depends only on the backend set, the weights and the seed, so every host
 * with the same backends and seed holds the same map and sends a flow to the same backend.
 * Changing one backend changes about M/N slots; the planner writes only those elements.
 */
export interface SpreadMap {
  /** `elements[slot]` = `address . port`. */
  readonly elements: ReadonlyArray<string | undefined>;
  /** The Maglev table behind `elements` (hash or weighted): the planner diffs it by index. */
  readonly table?: SlotTable;
  /** The slot expression of the DNAT rule (`numgen random mod 3`). */
  readonly pick: string;
}

/** The flow key: source address and port, destination address and port, protocol. */
export const FLOW_HASH_KEY = 'ip saddr . th sport . ip daddr . th dport . meta l4proto';
/** The same for the `ip6` table. */
export const FLOW_HASH_KEY6 = 'ip6 saddr . th sport . ip6 daddr . th dport . meta l4proto';

/** Seeds as nft prints them (hex), so a listed rule reads like ours. */
const seedText = (seed: number) => `0x${seed.toString(16).padStart(8, '0')}`;

/** `previous`: the programmed slots (read only by the `random` layout, which keeps them stable). */
export function spreadMap(m: RuleMapping, previous: () => ReadonlyArray<string | undefined> | undefined): SpreadMap {
  const targets = m.targets.map((t) => `${t.address} . ${t.port}`);
  const weighted = m.targets.some((t) => t.weight !== m.targets[0]!.weight);
  if (m.spread === 'random' && !weighted) return { elements: assignSlots(previous(), targets), pick: `numgen random mod ${targets.length}` };
  const table = maglevSlots(m);
  const size = table.slots.length;
  let elements: Array<string | undefined> | undefined;
  return {
    // Made only when something reads them per slot (a kernel read to compare with, a test).
    get elements() {
      return (elements ??= slotKeys(table));
    },
    table,
    pick: m.spread === 'hash' ? `jhash ${m.family === 'ip6' ? FLOW_HASH_KEY6 : FLOW_HASH_KEY} mod ${size} seed ${seedText(m.seed)}` : `numgen random mod ${size}`,
  };
}

/**
 * The table as backend keys per slot; a slot of no backend (every backend drained or weight 0)
 * is a hole: no element (it was an empty `0 : ` element the kernel refused).
 */
export function slotKeys(t: SlotTable): Array<string | undefined> {
  const out = new Array<string | undefined>(t.slots.length).fill(undefined);
  for (let s = 0; s < out.length; s++) {
    const i = t.slots[s]!;
    if (i >= 0) out[s] = t.keys[i]!;
  }
  return out;
}

/**
 * Mapping entries are immutable and reused across syncs: a table is computed once per entry, and
 * once per backend set of a mapping (`last`: a resync or an event that changes nothing else
 * finds the table of the same targets, weights and seed, and computes nothing).
 */
const tables = new WeakMap<RuleMapping, SlotTable>();
const last = new Map<string, { signature: string; table: SlotTable }>();

function maglevSlots(m: RuleMapping): SlotTable {
  const known = tables.get(m);
  if (known) return known;
  const backends = m.targets.map((x) => ({ key: `${x.address} . ${x.port}`, weight: x.weight }));
  const size = maglevTableSize(backends.length);
  const signature = `${m.seed} ${size} ${backends.map((b) => `${b.key}@${b.weight}`).join(',')}`;
  const id = m.family === 'ip6' ? `${m.id}/ip6` : m.id; // each family's table of its own targets
  const same = last.get(id);
  let table = same?.signature === signature ? same.table : undefined;
  if (!table) {
    const t = maglevTable(backends, size, m.seed);
    table = { keys: t.backends.map((b) => b.key), slots: t.slots };
  }
  tables.set(m, table);
  if (last.size >= 64 && !last.has(id)) last.clear(); // bounded: mappings come and go in a daemon
  last.set(id, { signature, table });
  return table;
}

/**
 * Slot i of the spread map for each wanted target, changing as few slots as possible from the
 * previous assignment: kept targets keep their slot, new ones fill holes then append, and when
 * the map shrinks the highest slots move down into the holes (so slots stay 0..n-1 for `mod n`).
 */
export function assignSlots(previous: ReadonlyArray<string | undefined> | undefined, wanted: readonly string[]): string[] {
  if (!previous) return [...wanted];
  const want = new Set(wanted);
  const seen = new Set<string>();
  const slots: Array<string | undefined> = previous.map((c) => (c !== undefined && want.has(c) && !seen.has(c) ? (seen.add(c), c) : undefined));
  const fresh = wanted.filter((c) => !seen.has(c));
  for (let i = 0; i < slots.length && fresh.length > 0; i++) if (slots[i] === undefined) slots[i] = fresh.shift();
  slots.push(...fresh);
  for (let hole = slots.indexOf(undefined); hole >= 0; hole = slots.indexOf(undefined)) {
    const last = slots.pop();
    if (last !== undefined && hole < slots.length) slots[hole] = last;
  }
  return slots as string[];
}
