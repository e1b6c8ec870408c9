import { describe, expect, it } from 'vitest';
import { toRuleMapping, type MappingBackend, type MappingEntry, type MappingSpec } from '../../src/engine/dataplane/model.js';
import { renderIptables } from '../../src/engine/dataplane/iptables.js';
import { EMPTY_NFT_KERNEL, nftKernelFrom, planNft, renderNft, type NftKernel } from '../../src/engine/dataplane/nft.js';
import { affinityLeavers, clientsOf } from '../../src/engine/dataplane/affinity.js';
import { parseWeightedEndpoint } from '../../src/engine/model/validate.js';
import { parseAffinityTimeout, parseSeed, resolveSpread } from '../../src/engine/map-image-spread.js';
import { backendsFromFlags } from '../../src/engine/discovery/static/parse.js';
import { backendWeight } from '../../src/engine/model/backend.js';

/** Issue 18: spread layouts, weights and affinity as rule text and plans (pure). */
const base: MappingSpec = { id: 'tcp-25400', protocol: 'tcp', port: 25400, image: 'web:1', containerPort: 80, staticBackends: [], dataplane: 'nft', created: '2026-01-01T00:00:00Z' };
const spec = (extra: Partial<MappingSpec> = {}): MappingSpec => ({ ...base, ...extra });
const be = (n: number, weight?: number): MappingBackend => ({ id: `static:${n}`, name: `b${n}`, address: `198.18.53.${n}`, port: 80, ...(weight === undefined ? {} : { weight }) });
const entry = (backends: MappingBackend[], extra: Partial<MappingSpec> = {}, draining: string[] = []): MappingEntry => ({ spec: spec(extra), backends, draining, updated: '2026-01-01T00:00:00Z' });
const ten = Array.from({ length: 10 }, (_, i) => be(i + 2));
const svcRules = (e: MappingEntry) => renderNft([toRuleMapping(e)]).chains.get('svc_tcp_25400')!.rules;
const spreadOf = (e: MappingEntry, kernel?: NftKernel) => renderNft([toRuleMapping(e)], kernel).sets.get('spread_tcp_25400')!.elements;

describe('nft spread layouts', () => {
  it.each([
    ['random, equal weights: numgen over N slots', entry(ten), /dnat ip to numgen random mod 10 map @spread_tcp_25400/, 10],
    ['random, unequal weights: numgen over the Maglev table', entry([be(2, 3), be(3, 1)]), /dnat ip to numgen random mod 32749 map/, 32749],
    ['hash: jhash of the 5-tuple over the Maglev table, default seed', entry(ten, { spread: 'hash' }), /dnat ip to jhash ip saddr \. th sport \. ip daddr \. th dport \. meta l4proto mod 32749 seed 0x656c6173 map @spread_tcp_25400/, 32749],
    ['hash with a seed', entry(ten, { spread: 'hash', seed: 7 }), /mod 32749 seed 0x00000007 map/, 32749],
  ])('%s', (_, e, rule, slots) => {
    expect(svcRules(e)).toEqual([expect.stringMatching(rule)]);
    expect(spreadOf(e)).toHaveLength(slots);
  });

  it('weights: a backend of weight 3 holds 3x the slots of one of weight 1; weight 0 and drained ones hold none', () => {
    const slots = spreadOf(entry([be(2, 3), be(3, 1), be(4, 0), be(5)], { spread: 'hash' }, ['198.18.53.5:80']));
    const count = (a: string) => slots.filter((s) => s === `${a} . 80`).length;
    expect(count('198.18.53.2') / count('198.18.53.3')).toBeCloseTo(3, 1);
    expect([count('198.18.53.4'), count('198.18.53.5')]).toEqual([0, 0]);
  });

  it('the table depends on the backends and the seed only, not their order or the state directory', () => {
    expect(spreadOf(entry(ten, { spread: 'hash' }))).toEqual(spreadOf(entry([...ten].reverse(), { spread: 'hash' })));
    expect(spreadOf(entry(ten, { spread: 'hash', seed: 1 }))).not.toEqual(spreadOf(entry(ten, { spread: 'hash' })));
  });

  it('removing 1 of 10 writes only the slots that change (element-wise; the map is never replaced)', () => {
    const before = renderNft([toRuleMapping(entry(ten, { spread: 'hash' }))]);
    const after = renderNft([toRuleMapping(entry(ten.filter((_, i) => i !== 3), { spread: 'hash' }))], nftKernelFrom(before));
    const text = planNft(after, nftKernelFrom(before), before);
    const del = /delete element ip elastic spread_tcp_25400 \{ ([^}]*) \}/.exec(text)![1]!.split(', ');
    const changed = before.sets.get('spread_tcp_25400')!.elements.filter((e, i) => e !== after.sets.get('spread_tcp_25400')!.elements[i]).length;
    expect(del).toHaveLength(changed);
    expect(changed / 32749).toBeLessThan(0.1 + 0.01);
    expect(text).not.toMatch(/delete map|add map|flush/);
  });
});

describe('affinity (nft)', () => {
  const e = entry(ten, { affinityS: 30 });
  const r = renderNft([toRuleMapping(e)]);

  it('a dynamic timeout map checked before the spread, filled in postrouting', () => {
    expect(r.sets.get('aff_tcp_25400_30')).toMatchObject({ kind: 'map', dynamic: true, decl: expect.stringContaining('flags dynamic,timeout; timeout 30s;') });
    expect(r.chains.get('svc_tcp_25400')!.rules.map((x) => x.split(' comment')[0])).toEqual([
      'meta l4proto tcp dnat ip to ip saddr map @aff_tcp_25400_30',
      'meta l4proto tcp dnat ip to numgen random mod 10 map @spread_tcp_25400',
    ]);
    expect(r.chains.get('hp_tcp_25400')!.rules[0]).toMatch(/^update @aff_tcp_25400_30 \{ ip saddr : ip daddr \. tcp dport \}/);
  });

  it('its elements (the packet path\'s) are never planned; a new timeout is a new map', () => {
    const kernel: NftKernel = { ...nftKernelFrom(r), sets: new Map([...nftKernelFrom(r).sets, ['aff_tcp_25400_30', { kind: 'map', elements: ['x'] }]]) };
    expect(planNft(r, kernel, r)).toBe('');
    const longer = renderNft([toRuleMapping(entry(ten, { affinityS: 60 }))]);
    expect(planNft(longer, kernel, r)).toMatch(/add map ip elastic aff_tcp_25400_60[\s\S]*delete map ip elastic aff_tcp_25400_30/);
    expect(planNft(r, EMPTY_NFT_KERNEL)).not.toMatch(/add element ip elastic aff_/);
  });

  it('entries to clear: backends that left the spread (removed, drained, weight 0), read from the listed map', () => {
    const before = { v: 1 as const, generation: 1, mappings: [e] };
    const after = { v: 1 as const, generation: 2, mappings: [entry([...ten.slice(0, 7), be(9, 0), be(10)], { affinityS: 30 }, ['198.18.53.10:80'])] };
    expect(affinityLeavers(before, after)).toEqual([{ map: 'aff_tcp_25400_30', gone: new Set(['198.18.53.9:80', '198.18.53.10:80', '198.18.53.11:80']), families: ['ip'] }]);
    const listed = JSON.stringify({ nftables: [{ metainfo: {} }, { map: { name: 'aff_tcp_25400_30', elem: [[{ elem: { val: '198.19.53.2', expires: 9 } }, { concat: ['198.18.53.9', 80] }], [{ elem: { val: '198.19.53.6', expires: 9 } }, { concat: ['198.18.53.2', 80] }]] } }] });
    expect(clientsOf(listed, new Set(['198.18.53.9:80']))).toEqual(['198.19.53.2']);
  });
});

describe('iptables: weights as a weighted cascade', () => {
  it('rule i is taken with chance w_i / (w_i + ... + w_n); equal weights keep 1/(n-i)', () => {
    const probs = (backends: MappingBackend[]) =>
      [...renderIptables([toRuleMapping(entry(backends, { dataplane: 'iptables' }))], []).nat.get('ELASTIC-SVC-TCP-25400')!].map((r) => /--probability (\S+)/.exec(r)?.[1] ?? 'rest');
    const weighted = toRuleMapping(entry([be(2, 3), be(3, 1), be(4, 2)], { dataplane: 'iptables' })).targets.map((t) => t.weight);
    const rest = weighted.map((_, i) => weighted.slice(i).reduce((a, b) => a + b, 0));
    expect(probs([be(2, 3), be(3, 1), be(4, 2)])).toEqual([(weighted[0]! / rest[0]!).toFixed(10), (weighted[1]! / rest[1]!).toFixed(10), 'rest']);
    expect(probs([be(2), be(3), be(4)])).toEqual(['0.3333333333', '0.5000000000', 'rest']);
    expect(probs([be(2, 1), be(3, 0)])).toEqual(['rest']); // weight 0: no rule at all
  });
});

describe('weights and spread options as input', () => {
  it.each([
    ['198.18.53.2:80', { address: '198.18.53.2', port: 80 }],
    ['198.18.53.2:80@3', { address: '198.18.53.2', port: 80, weight: 3 }],
    ['198.18.53.2:80@0', { address: '198.18.53.2', port: 80, weight: 0 }],
    ['[2001:2::1]:80@256', { address: '2001:2::1', port: 80, weight: 256 }],
  ])('%s', (text, want) => expect(parseWeightedEndpoint(text)).toEqual(want));

  it.each(['198.18.53.2:80@257', '198.18.53.2:80@', '198.18.53.2:80@-1', '198.18.53.2:80@1.5', '198.18.53.2:80@x'])('refuses %s', (text) => expect(() => parseWeightedEndpoint(text)).toThrow(/invalid weight/));

  it('a weight becomes the elastic.weight label render and map-image both read', () => {
    const [b] = backendsFromFlags(['198.18.53.2:80@7'], 'web');
    expect(b!.labels).toEqual({ 'elastic.weight': '7' });
    expect(backendWeight(b!)).toBe(7);
  });

  it.each([
    ['nft, nothing given: hash (the default since the benchmark was met)', 'nft', {}, { spread: 'hash' }],
    ['nft, only a seed: hash with it', 'nft', { seed: 7 }, { spread: 'hash', seed: 7 }],
    ['iptables, nothing given: random', 'iptables', {}, { spread: 'random' }],
    ['hash, the default seed is not stored', 'nft', { spread: 'hash', seed: 0x656c6173 }, { spread: 'hash' }],
    ['hash with a seed', 'nft', { spread: 'hash', seed: 7 }, { spread: 'hash', seed: 7 }],
    ['affinity: 3 h by default', 'nft', { affinity: 'client-ip' }, { spread: 'hash', affinityS: 10_800 }],
    ['affinity none', 'nft', { affinity: 'none' }, { spread: 'hash' }],
  ] as const)('resolveSpread: %s', (_, plane, o, want) => expect(resolveSpread(plane, o)).toEqual(want));

  it.each([
    ['iptables', { spread: 'hash' }, /--spread hash needs the nft data plane/],
    ['iptables', { affinity: 'client-ip' }, /--affinity needs the nft data plane/],
    ['nft', { spread: 'random', seed: 7 }, /--seed only applies to --spread hash/],
    ['nft', { affinityTimeoutS: 60 }, /--affinity-timeout only applies/],
    ['nft', { affinity: 'client-ip', affinityTimeoutS: 86_401 }, /out of range/],
  ] as const)('resolveSpread refuses on %s: %j', (plane, o, re) => expect(() => resolveSpread(plane, o)).toThrow(re));

  it.each([
    ['90', 90],
    ['90s', 90],
    ['10m', 600],
    ['3h', 10_800],
    ['24h', 86_400],
  ])('affinity timeout %s = %i s', (text, s) => expect(parseAffinityTimeout(text)).toBe(s));
  it.each(['0', '25h', '1d', '-1', '1.5h', ''])('refuses affinity timeout %j', (text) => expect(() => parseAffinityTimeout(text)).toThrow(/invalid --affinity-timeout/));
  it.each([
    ['0', 0],
    ['4294967295', 4294967295],
    ['0x656c6173', 0x656c6173],
  ])('seed %s', (text, n) => expect(parseSeed(text)).toBe(n));
  it.each(['4294967296', '-1', 'x', '0x123456789'])('refuses seed %j', (text) => expect(() => parseSeed(text)).toThrow(/invalid --seed/));
});
