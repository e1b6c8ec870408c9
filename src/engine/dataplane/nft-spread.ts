import { maglevTable, maglevTableSize, tableKeys } from './maglev.js';
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
  readonly elements: readonly string[];
  /** The slot expression of the DNAT rule (`numgen random mod 3`). */
  readonly pick: string;
}

/** The flow key: source address and port, destination address and port, protocol. */
export const FLOW_HASH_KEY = 'ip saddr . th sport . ip daddr . th dport . meta l4proto';

/** Seeds as nft prints them (hex), so a listed rule reads like ours. */
const seedText = (seed: number) => `0x${seed.toString(16).padStart(8, '0')}`;

export function spreadMap(m: RuleMapping, previous: ReadonlyArray<string | undefined> | undefined): SpreadMap {
  const targets = m.targets.map((t) => `${t.address} . ${t.port}`);
  const weighted = m.targets.some((t) => t.weight !== m.targets[0]!.weight);
  if (m.spread === 'random' && !weighted) return { elements: assignSlots(previous, targets), pick: `numgen random mod ${targets.length}` };
  const elements = maglevElements(m);
  return { elements, pick: m.spread === 'hash' ? `jhash ${FLOW_HASH_KEY} mod ${elements.length} seed ${seedText(m.seed)}` : `numgen random mod ${elements.length}` };
}

/** Mapping entries are immutable and reused across syncs: a table is computed once per backend set. */
const tables = new WeakMap<RuleMapping, string[]>();

function maglevElements(m: RuleMapping): string[] {
  const known = tables.get(m);
  if (known) return known;
  const t = maglevTable(m.targets.map((x) => ({ key: `${x.address} . ${x.port}`, weight: x.weight })), maglevTableSize(m.targets.length), m.seed);
  const keys = tableKeys(t);
  tables.set(m, keys);
  return keys;
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
