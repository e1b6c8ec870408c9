/**
 * Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
 * Balancer", NSDI 2016), the pure part of map-image's `--spread hash` (issue 18).
 *
 * A lookup table of M slots (M prime) maps a flow hash `mod M` to a backend. It is computed from the
 * backend set alone (sorted keys, weights) and a seed, so every LB host with the same backends and
 * seed computes the same table and picks the same backend for a flow, with no state shared. Each
 * backend walks its own permutation of the slots (offset and skip from two seeded hashes of its
 * key) and, in turns, claims the next free slot of its permutation; a backend with weight w takes
 * w turns for every `max weight` turns of the round. Removing one of N backends frees only its own
 * ~M/N slots and moves few others (measured: bench/map-image/maglev.ts), which is what lets
 * established-but-not-yet-seen flows and other LB hosts agree.
 *
 * Only the slots that differ between two tables are written to the kernel (`tableChanges`).
 */

/** The same constant everywhere, so two hosts agree with no configuration (`--seed` overrides it). */
export const DEFAULT_SEED = 0x656c6173; // "elas"

/** Weights are whole numbers in this range; 0 = no new connections. */
export const MAX_WEIGHT = 1000;

export interface MaglevBackend {
  /** Stable identity of the backend in the table: `ADDRESS:PORT`. */
  readonly key: string;
  readonly weight: number;
}

/** MurmurHash3 x86 32-bit of a string's UTF-8 bytes: small, fast, well mixed, seedable. */
export function murmur3(text: string, seed: number): number {
  const bytes = Buffer.from(text, 'utf8');
  let h = seed >>> 0;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const blocks = bytes.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    let k = bytes.readUInt32LE(i * 4);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = blocks * 4;
  switch (bytes.length & 3) {
    case 3:
      k ^= bytes[tail + 2]! << 16;
    // falls through
    case 2:
      k ^= bytes[tail + 1]! << 8;
    // falls through
    case 1:
      k ^= bytes[tail]!;
      k = Math.imul(k, c1);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, c2);
      h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * Table size for N backends: the smallest prime >= max(minSlots, slotsPerBackend x N), at most
 * about maxSlots. Chosen by measurement (docs/BENCHMARKS.md, "map-image --spread hash"): 32,749
 * slots keep the flows moved by one removal under 1/N + 1% for N = 10, 100 and 1,000, and load in
 * nft in about 360 ms on a loaded machine (65,521 took 840 ms, over the 500 ms goal). It is the
 * same up to 1,023 backends, so a table never changes size (which moves every flow) below that.
 */
export function maglevTableSize(backends: number, slotsPerBackend = 32, minSlots = 32749, maxSlots = 262139): number {
  let m = Math.min(maxSlots, Math.max(minSlots, slotsPerBackend * Math.max(1, backends)));
  while (!isPrime(m)) m++;
  return m;
}

/**
 * The lookup table: for each of `size` slots the index (into `backends` sorted by key) of the
 * backend it sends to, or -1 when no backend has a positive weight. Pure and deterministic: the
 * order `backends` come in does not matter, only their keys, weights and the seed.
 */
export function maglevTable(input: readonly MaglevBackend[], size: number, seed = DEFAULT_SEED): { backends: MaglevBackend[]; slots: Int32Array } {
  if (!isPrime(size)) throw new Error(`maglev table size ${size} is not prime`);
  const backends = [...input].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 1; i < backends.length; i++) if (backends[i]!.key === backends[i - 1]!.key) throw new Error(`backend ${backends[i]!.key} appears twice`);
  for (const b of backends) if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > MAX_WEIGHT) throw new Error(`weight of ${b.key} must be a whole number 0-${MAX_WEIGHT}`);
  const slots = new Int32Array(size).fill(-1);
  // The live backends' state in typed arrays (one change at 1,000 backends walks ~300,000 probes:
  // this loop is most of its CPU time). `at` is the backend's current position in its permutation
  // (offset + next x skip mod size), stepped by adding skip instead of multiplying.
  const live = backends.flatMap((b, i) => (b.weight > 0 ? [i] : []));
  const n = live.length;
  if (n === 0) return { backends, slots };
  const index = Int32Array.from(live);
  const weight = Int32Array.from(live, (i) => backends[i]!.weight);
  const at = new Int32Array(n);
  const skip = new Int32Array(n);
  const credit = new Int32Array(n);
  const taken = new Uint8Array(size); // probed instead of slots: 4 times smaller, stays in the L1 cache
  const perm = permutations(seed, size);
  for (let j = 0; j < n; j++) {
    const p = perm(backends[index[j]!]!.key);
    at[j] = p.offset;
    skip[j] = p.skip;
  }
  let maxWeight = 0;
  for (let j = 0; j < n; j++) maxWeight = Math.max(maxWeight, weight[j]!);
  let filled = 0;
  while (filled < size) {
    for (let j = 0; j < n; j++) {
      let c = credit[j]! + weight[j]!;
      while (c >= maxWeight && filled < size) {
        c -= maxWeight;
        // Walk this backend's permutation to its next free slot (skip < size, size prime: it visits every slot).
        let slot = at[j]!;
        const step = skip[j]!;
        while (taken[slot] !== 0) {
          slot += step;
          if (slot >= size) slot -= size;
        }
        taken[slot] = 1;
        slots[slot] = index[j]!;
        slot += step;
        at[j] = slot >= size ? slot - size : slot;
        filled++;
      }
      credit[j] = c;
      if (filled === size) break;
    }
  }
  return { backends, slots };
}

/**
 * A backend's permutation (offset and skip, two seeded hashes of its key), remembered per seed
 * and table size: a sync of 1,000 backends would otherwise hash 2,000 strings to change one.
 */
const permutationCache = new Map<string, Map<string, { offset: number; skip: number }>>();

function permutations(seed: number, size: number): (key: string) => { offset: number; skip: number } {
  const id = `${seed}/${size}`;
  let known = permutationCache.get(id);
  if (!known) {
    if (permutationCache.size >= 8) permutationCache.clear(); // a few mappings' seeds and sizes at most
    known = new Map();
    permutationCache.set(id, known);
  }
  const cache = known;
  return (key) => {
    let p = cache.get(key);
    if (!p) {
      if (cache.size >= 65_536) cache.clear(); // bounded: backends come and go for months
      p = { offset: murmur3(key, seed) % size, skip: (murmur3(key, (seed ^ 0x9e3779b9) >>> 0) % (size - 1)) + 1 };
      cache.set(key, p);
    }
    return p;
  };
}

/** The table as backend keys per slot ('' = none): what is compared between two versions. */
export function tableKeys(t: { backends: readonly MaglevBackend[]; slots: Int32Array }): string[] {
  const keys = t.backends.map((b) => b.key);
  const out = new Array<string>(t.slots.length);
  for (let s = 0; s < out.length; s++) {
    const i = t.slots[s]!;
    out[s] = i < 0 ? '' : keys[i]!;
  }
  return out;
}

/** The slots whose backend differs (element-wise updates; both tables must have the same size). */
export function tableChanges(before: readonly string[], after: readonly string[]): { slot: number; key: string }[] {
  if (before.length !== after.length) throw new Error(`tables of different sizes (${before.length}, ${after.length}): program the whole table`);
  const out: { slot: number; key: string }[] = [];
  for (let s = 0; s < after.length; s++) if (before[s] !== after[s]) out.push({ slot: s, key: after[s]! });
  return out;
}

/** A computed table: `slots[s]` indexes `keys` (-1 = no backend). What the planner diffs without strings per slot. */
export interface SlotTable {
  readonly keys: readonly string[];
  readonly slots: Int32Array;
}

/**
 * The slots whose backend differs between two computed tables of the same size, by index: no
 * per-slot string is made or compared (at 32,749 slots that was most of a sync's garbage).
 */
export function slotTableChanges(before: SlotTable, after: SlotTable): number[] {
  if (before.slots.length !== after.slots.length) throw new Error(`tables of different sizes (${before.slots.length}, ${after.slots.length})`);
  const now = new Map(after.keys.map((k, i) => [k, i]));
  const remap = Int32Array.from(before.keys, (k) => now.get(k) ?? -2); // -2: a backend that is gone
  const out: number[] = [];
  for (let s = 0; s < after.slots.length; s++) {
    const b = before.slots[s]!;
    if ((b < 0 ? -1 : remap[b]!) !== after.slots[s]) out.push(s);
  }
  return out;
}
