import { describe, expect, it } from 'vitest';
import { DEFAULT_SEED, maglevTable, maglevTableSize, murmur3, type MaglevBackend } from '../../src/engine/dataplane/maglev.js';
import { toRuleMapping, type MappingBackend, type MappingEntry, type MappingSpec } from '../../src/engine/dataplane/model.js';
import { EMPTY_NFT_KERNEL, nftKernelFrom, planNft, renderNft, type NftKernel } from '../../src/engine/dataplane/nft.js';

/**
 * The fast path of a `--spread hash` sync (issue 18: one change at 1,000 backends < 20 ms): the
 * typed-array Maglev fill gives exactly the table of the plain algorithm (hosts of different
 * versions must agree), and a plan made by comparing two computed tables by index writes exactly
 * what comparing the slots as text writes.
 */
const base: MappingSpec = { id: 'tcp-26210', protocol: 'tcp', port: 26210, image: 'web:1', containerPort: 80, staticBackends: [], dataplane: 'nft', spread: 'hash', created: '2026-01-01T00:00:00Z' };
const be = (n: number, weight?: number): MappingBackend => ({ id: `static:${n}`, name: `b${n}`, address: `198.18.${64 + (n >> 8)}.${n & 255}`, port: 80, ...(weight === undefined ? {} : { weight }) });
const entry = (backends: MappingBackend[], draining: string[] = [], extra: Partial<MappingSpec> = {}): MappingEntry => ({ spec: { ...base, ...extra }, backends, draining, updated: '2026-01-01T00:00:00Z' });
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => be(from + i));

/** The algorithm as first written (objects, multiply and modulo per probe): the reference. */
function referenceTable(input: readonly MaglevBackend[], size: number, seed: number): Int32Array {
  const backends = [...input].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const slots = new Int32Array(size).fill(-1);
  const live = backends.map((b, i) => ({ i, weight: b.weight, offset: murmur3(b.key, seed) % size, skip: (murmur3(b.key, (seed ^ 0x9e3779b9) >>> 0) % (size - 1)) + 1, next: 0, credit: 0 })).filter((b) => b.weight > 0);
  if (live.length === 0) return slots;
  const maxWeight = Math.max(...live.map((b) => b.weight));
  let filled = 0;
  while (filled < size) {
    for (const b of live) {
      b.credit += b.weight;
      while (b.credit >= maxWeight && filled < size) {
        b.credit -= maxWeight;
        let slot = (b.offset + b.next * b.skip) % size;
        while (slots[slot] !== -1) slot = (b.offset + ++b.next * b.skip) % size;
        slots[slot] = b.i;
        b.next++;
        filled++;
      }
      if (filled === size) break;
    }
  }
  return slots;
}

/** A kernel view that has only the slots as text (as read back from the kernel): the plain comparison. */
const asText = (k: NftKernel): NftKernel => ({ ...k, sets: new Map([...k.sets].map(([n, s]) => [n, { kind: s.kind, elements: [...s.elements] }])) });

describe('maglevTable (typed arrays)', () => {
  it.each([
    ['1 backend', 1, 7, DEFAULT_SEED, false],
    ['3 weighted, small table', 3, 7, 1, true],
    ['10', 10, 4093, DEFAULT_SEED, false],
    ['100 weighted 0-4', 100, 32749, 0xffffffff, true],
    ['1,000', 1000, 32749, DEFAULT_SEED, false],
    ['1,000 weighted', 1000, 32749, 12345, true],
  ])('%s: the same table as the reference', (_, n, size, seed, weighted) => {
    const set = Array.from({ length: n }, (_, i) => ({ key: `198.18.${64 + (i >> 8)}.${i & 255} . ${26200 + (i % 50)}`, weight: weighted ? (i * 7919) % 5 : 1 }));
    expect(Array.from(maglevTable(set, size, seed).slots)).toEqual(Array.from(referenceTable(set, size, seed)));
  });
});

describe('plan of a hash spread', () => {
  it.each([
    ['one added to 1,000', range(1, 1000), range(1, 1001)],
    ['one removed from 1,000', range(1, 1000), range(2, 999)],
    ['half replaced', range(1, 100), range(51, 100)],
    ['a weight changed', range(1, 10), [...range(1, 9), be(10, 3)]],
    ['the last one drained (no backend)', range(1, 3), range(1, 3), ['198.18.64.1:80', '198.18.64.2:80', '198.18.64.3:80']],
  ])('%s: by index, the same lines as by text', (_, from, to, draining: string[] = []) => {
    const before = renderNft([toRuleMapping(entry(from))]);
    const kernel = nftKernelFrom(before);
    const after = renderNft([toRuleMapping(entry(to, draining))], kernel);
    const fast = planNft(after, kernel, before);
    expect(fast).toBe(planNft(after, asText(kernel), before));
    const changed = fast.split('\n').filter((l) => l.includes('spread_tcp_26210 {'));
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.join('\n').length).toBeLessThan(maglevTableSize(to.length) * 30); // element-wise, not the whole table
  });

  it('a mapping whose every backend is drained programs an empty table (no "0 : " elements the kernel refuses)', () => {
    const text = planNft(renderNft([toRuleMapping(entry([be(2)], ['198.18.64.2:80']))]), EMPTY_NFT_KERNEL);
    expect(text).toContain('add map ip elastic spread_tcp_26210');
    expect(text).not.toMatch(/\d : [,}]/);
    expect(text).not.toMatch(/add element ip elastic spread_tcp_26210/);
    // and its first backend fills it: every slot
    const empty = renderNft([toRuleMapping(entry([be(2)], ['198.18.64.2:80']))]);
    const one = planNft(renderNft([toRuleMapping(entry([be(2)]))], nftKernelFrom(empty)), nftKernelFrom(empty), empty);
    expect(one).not.toMatch(/delete element ip elastic spread_tcp_26210/);
    expect((/add element ip elastic spread_tcp_26210 \{ ([^}]*) \}/.exec(one)?.[1] ?? '').split(', ')).toHaveLength(32749);
  });
});
