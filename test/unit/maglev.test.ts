import { describe, expect, it } from 'vitest';
import { DEFAULT_SEED, maglevTable, maglevTableSize, murmur3, tableChanges, tableKeys, type MaglevBackend } from '../../src/engine/dataplane/maglev.js';

const backends = (n: number, weight = 1): MaglevBackend[] => Array.from({ length: n }, (_, i) => ({ key: `198.18.${Math.floor(i / 250)}.${(i % 250) + 2}:80`, weight }));
const shares = (keys: string[]) => keys.reduce<Record<string, number>>((m, k) => ((m[k] = (m[k] ?? 0) + 1), m), {});

describe('murmur3 (x86, 32-bit)', () => {
  it.each([
    ['', 0, 0],
    ['', 1, 0x514e28b7],
    ['hello', 0, 0x248bfa47],
    ['hello, world', 0, 0x149bbb7f],
    ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ])('murmur3(%j, %i) = %i (reference values)', (text, seed, want) => expect(murmur3(text, seed)).toBe(want));
});

describe('maglevTableSize', () => {
  it.each([
    [1, 32749],
    [100, 32749],
    [1000, 32749],
    [1024, 32771],
    [3000, 96001],
    [10000, 262139],
  ])('%i backends: %i slots (prime, 32,749 up to 1,023 backends, then >= 32 per backend up to ~262k)', (n, m) => expect(maglevTableSize(n)).toBe(m));
});

describe('maglevTable', () => {
  it('is the same for the same backends and seed, whatever their order (two hosts agree)', () => {
    const set = backends(20);
    const a = tableKeys(maglevTable(set, 4093));
    const b = tableKeys(maglevTable([...set].reverse(), 4093));
    expect(b).toEqual(a);
    expect(tableKeys(maglevTable(set, 4093, DEFAULT_SEED + 1))).not.toEqual(a);
  });

  it('fills every slot, and each backend gets about M/N of them', () => {
    const keys = tableKeys(maglevTable(backends(10), 4093));
    expect(keys.every((k) => k !== '')).toBe(true);
    for (const count of Object.values(shares(keys))) expect(Math.abs(count - 409.3) / 409.3).toBeLessThan(0.02);
  });

  it.each([
    [[3, 1], [0.75, 0.25]],
    [[1, 1, 2], [0.25, 0.25, 0.5]],
    [[5, 0], [1, 0]],
  ])('weights %j give shares %j (within 1%%); weight 0 gets no slot', (weights, want) => {
    const set = weights.map((weight, i) => ({ key: `198.18.0.${i + 2}:80`, weight }));
    const counts = shares(tableKeys(maglevTable(set, 4093)));
    set.forEach((b, i) => expect(Math.abs((counts[b.key] ?? 0) / 4093 - want[i]!)).toBeLessThan(0.01));
  });

  it('with no backend of positive weight, no slot has a backend', () => {
    expect(tableKeys(maglevTable([], 4093)).every((k) => k === '')).toBe(true);
    expect(tableKeys(maglevTable([{ key: '198.18.0.2:80', weight: 0 }], 4093)).every((k) => k === '')).toBe(true);
  });

  it.each([10, 100])('removing one of %i backends moves at most 1/N + 1%% of all slots', (n) => {
    const m = maglevTableSize(n);
    const set = backends(n);
    const before = tableKeys(maglevTable(set, m));
    const after = tableKeys(maglevTable(set.filter((_, i) => i !== 3), m));
    const changed = tableChanges(before, after);
    const moved = changed.filter((c) => before[c.slot] !== set[3]!.key).length;
    expect(changed.length / m).toBeLessThanOrEqual(1 / n + 0.01);
    expect(moved / m).toBeLessThan(0.01);
  });

  it.each([
    [[{ key: '198.18.0.2:80', weight: 1 }, { key: '198.18.0.2:80', weight: 2 }], /appears twice/],
    [[{ key: '198.18.0.2:80', weight: -1 }], /whole number 0-1000/],
    [[{ key: '198.18.0.2:80', weight: 1.5 }], /whole number 0-1000/],
  ])('refuses %j', (set, message) => expect(() => maglevTable(set, 4093)).toThrow(message));

  it('refuses a size that is not prime', () => expect(() => maglevTable(backends(2), 4096)).toThrow(/not prime/));
});

describe('tableChanges', () => {
  it('lists only the slots that differ', () => expect(tableChanges(['a', 'b', 'c'], ['a', 'x', 'c'])).toEqual([{ slot: 1, key: 'x' }]));
  it('refuses tables of different sizes', () => expect(() => tableChanges(['a'], ['a', 'b'])).toThrow(/different sizes/));
});
