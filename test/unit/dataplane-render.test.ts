import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backendHash, toRuleMapping, type MappingEntry, type MappingSpec, type RuleMapping } from '../../src/engine/dataplane/model.js';
import {
  EMPTY_IPT,
  backendChain,
  parseIptablesSave,
  planIptables,
  probability,
  renderIptables,
  type IptKernel,
} from '../../src/engine/dataplane/iptables.js';
import { EMPTY_NFT, EMPTY_NFT_KERNEL, assignSlots, nftKernelFrom, nftTarget, parseNftJson, planNft, renderNft } from '../../src/engine/dataplane/nft.js';
import { refusal } from '../../src/engine/dataplane/exec.js';
import { DEFAULT_NAMESPACE, namespaceFor, namespaceOfEnv, ownsChain } from '../../src/engine/dataplane/namespace.js';
import { stateDir } from '../../src/engine/runtime/paths.js';

const spec = (port: number, extra: Partial<MappingSpec> = {}): MappingSpec => ({
  id: `tcp-${port}`,
  protocol: 'tcp',
  port,
  image: 'web:1',
  containerPort: 80,
  staticBackends: [],
  dataplane: 'nft',
  created: '2026-01-01T00:00:00Z',
  ...extra,
});
const be = (n: number) => ({ id: `docker:${n}`, name: `c${n}`, address: `198.18.0.${n}`, port: 80 });
const entry = (port: number, ns: number[], extra: Partial<MappingSpec> = {}, draining: string[] = []): MappingEntry => ({
  spec: spec(port, extra),
  backends: ns.map(be),
  draining,
  updated: '2026-01-01T00:00:00Z',
});
const emptyKernel: IptKernel = { chains: { nat: new Map(), filter: new Map() }, counters: new Map(), hooks: new Map(), filterChains: new Map() };

describe('toRuleMapping', () => {
  it('keeps only valid IPv4 targets on iptables (IPv6 ones on nft: mapimg-ipv6.test.ts), without duplicates or drained ones, sorted by hash', () => {
    const e: MappingEntry = {
      ...entry(18300, [2, 3], { dataplane: 'iptables' }),
      backends: [be(2), be(3), be(2), { id: 'x', name: 'v6', address: '2001:db8::1', port: 80 }, { id: 'y', name: 'bad', address: '198.18.0.9 -j ACCEPT', port: 80 }],
      draining: ['198.18.0.3:80'],
    };
    const r = toRuleMapping(e);
    expect(r.targets.map((t) => `${t.address}:${t.port}`)).toEqual(['198.18.0.2:80']);
    expect(r.targets[0]!.hash).toBe(backendHash('tcp-18300', '198.18.0.2', 80));
  });

  it.each([
    [{ id: 'tcp-18300; flush ruleset' }],
    [{ id: 'tcp-1', port: 2 }],
    [{ address: '198.18.0.1 ; flush' }],
  ])('refuses a spec that is not what it claims: %j', (bad) => {
    expect(() => toRuleMapping(entry(18300, [2], bad as Partial<MappingSpec>))).toThrow();
  });
});

describe('iptables render', () => {
  it('cascade probabilities give every backend 1/n', () => {
    expect([0, 1, 2].map((i) => probability(i, 3))).toEqual(['0.3333333333', '0.5000000000', '1.0000000000']);
  });

  it('golden: one mapping, two backends, FORWARD accept in DOCKER-USER', () => {
    const m = toRuleMapping(entry(18300, [2, 3], { dataplane: 'iptables' }));
    const text = planIptables({ desired: renderIptables([m], [m], 'DOCKER-USER'), kernel: emptyKernel });
    const [h2, h3] = [backendHash('tcp-18300', '198.18.0.2', 80), backendHash('tcp-18300', '198.18.0.3', 80)];
    const [first, second] = h2 < h3 ? [h2, h3] : [h3, h2];
    expect(text).toContain(`-A ELASTIC-SVC-TCP-18300 -m comment --comment "elastic:tcp-18300" -m statistic --mode random --probability 0.5000000000 -j ELASTIC-BE-${first}`);
    expect(text).toContain(`-A ELASTIC-SVC-TCP-18300 -m comment --comment "elastic:tcp-18300" -j ELASTIC-BE-${second}`);
    expect(text).toContain(`-A ELASTIC-BE-${h2} -p tcp -m comment --comment "elastic:tcp-18300 198.18.0.2:80" -m tcp -j DNAT --to-destination 198.18.0.2:80`);
    expect(text).toContain('-A ELASTIC-PREROUTING -p tcp -m tcp --dport 18300 -m addrtype --dst-type LOCAL -m comment --comment "elastic:tcp-18300" -j ELASTIC-SVC-TCP-18300');
    expect(text).toContain('-A ELASTIC-OUTPUT ! -d 127.0.0.0/8 -p tcp -m tcp --dport 18300 -m addrtype --dst-type LOCAL');
    expect(text).toContain('-I PREROUTING 1 -m comment --comment "elastic:hook" -j ELASTIC-PREROUTING');
    expect(text).toContain('*filter\n:ELASTIC-FORWARD - [0:0]\n-A ELASTIC-FORWARD -p tcp -m conntrack --ctstate DNAT --ctorigdstport 18300 -m comment --comment "elastic:tcp-18300" -j ACCEPT\n-I DOCKER-USER 1 -m comment --comment "elastic:hook" -j ELASTIC-FORWARD\nCOMMIT');
    // Every line either declares or changes one of our chains, or hooks into a built-in with our comment.
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(\*nat|\*filter|COMMIT|:ELASTIC-[A-Za-z0-9-]+ - \[0:0\]|-A ELASTIC-|-I (PREROUTING|OUTPUT|POSTROUTING|DOCKER-USER) 1 -m comment --comment "elastic:hook" -j ELASTIC-)/);
  });

  it('with a cache, adding one backend writes only the new chain and the chains that list backends', () => {
    const before = renderIptables([toRuleMapping(entry(18300, [2, 3]))], [], undefined);
    const after = renderIptables([toRuleMapping(entry(18300, [2, 3, 4]))], [], undefined);
    const kernel = { chains: { nat: before.nat, filter: before.filter }, hooks: new Map(before.hooks.map((h) => [`${h.table} ${h.builtin} ${h.target}`, 1])), counters: new Map() };
    const text = planIptables({ desired: after, previous: before, kernel });
    const declared = text.split('\n').filter((l) => l.startsWith(':'));
    expect(declared.sort()).toEqual([`:${backendChain(backendHash('tcp-18300', '198.18.0.4', 80))} - [0:0]`, ':ELASTIC-HP-TCP-18300 - [0:0]', ':ELASTIC-SVC-TCP-18300 - [0:0]'].sort());
    expect(text).not.toMatch(/^-I /m);
    expect(planIptables({ desired: after, previous: after, kernel: { ...kernel, chains: { nat: after.nat, filter: after.filter } } })).toBe('');
  });

  it('without a cache, rewrites everything, carries backend counters, deletes strays and duplicate hooks', () => {
    const desired = renderIptables([toRuleMapping(entry(18300, [2]))], [], undefined);
    const h = backendChain(backendHash('tcp-18300', '198.18.0.2', 80));
    const save = [
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':ELASTIC-PREROUTING - [0:0]',
      `:${h} - [0:0]`,
      ':ELASTIC-BE-0000000000000000 - [0:0]',
      '[0:0] -A PREROUTING -m comment --comment elastic:hook -j ELASTIC-PREROUTING',
      '[0:0] -A PREROUTING -m comment --comment "elastic:hook" -j ELASTIC-PREROUTING',
      '[0:0] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
      `[7:420] -A ${h} -p tcp -m tcp -j DNAT --to-destination 198.18.0.2:80`,
      'COMMIT',
    ].join('\n');
    const kernel = parseIptablesSave(save);
    expect(kernel.hooks.get('nat PREROUTING ELASTIC-PREROUTING')).toBe(2);
    const text = planIptables({ desired, kernel });
    expect(text).toContain(`[7:420] -A ${h} -p tcp`);
    expect(text.match(/^-D PREROUTING -m comment --comment "elastic:hook" -j ELASTIC-PREROUTING$/gm)).toHaveLength(1);
    expect(text).toMatch(/-X ELASTIC-BE-0000000000000000\nCOMMIT/);
    expect(text).not.toMatch(/-I PREROUTING/);
    expect(text).not.toMatch(/DOCKER/);
  });

  it('with no mapping left, removes hooks then chains, and touches nothing else', () => {
    const kernel = parseIptablesSave(['*nat', ':ELASTIC-PREROUTING - [0:0]', '-A PREROUTING -m comment --comment elastic:hook -j ELASTIC-PREROUTING', 'COMMIT', '*filter', ':FORWARD DROP [0:0]', ':DOCKER-USER - [0:0]', ':ELASTIC-FORWARD - [0:0]', '-A DOCKER-USER -m comment --comment elastic:hook -j ELASTIC-FORWARD', 'COMMIT'].join('\n'));
    expect(planIptables({ desired: EMPTY_IPT, kernel })).toBe(
      [
        '*nat',
        ':ELASTIC-PREROUTING - [0:0]',
        '-D PREROUTING -m comment --comment "elastic:hook" -j ELASTIC-PREROUTING',
        '-X ELASTIC-PREROUTING',
        'COMMIT',
        '*filter',
        ':ELASTIC-FORWARD - [0:0]',
        '-D DOCKER-USER -m comment --comment "elastic:hook" -j ELASTIC-FORWARD',
        '-X ELASTIC-FORWARD',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });
});

describe('nft render', () => {
  const k = (m: RuleMapping) => nftTarget(m.targets[0]!.address, m.targets[0]!.port);
  it('golden: numgen over a named map of backend address . port, counter and hairpin sets, --address match', () => {
    const m = toRuleMapping(entry(18301, [2, 3], { id: 'tcp-18301', address: '198.18.0.1' }));
    const text = planNft(renderNft([m]), EMPTY_NFT_KERNEL);
    const ts = m.targets.map((t) => `${t.address} . ${t.port}`);
    expect(text.split('\n')[0]).toBe('add table ip elastic');
    expect(text).toContain('add map ip elastic spread_tcp_18301 { typeof numgen random mod 2 : ip daddr . tcp dport; }');
    expect(text).toContain(`add element ip elastic spread_tcp_18301 { 0 : ${ts[0]}, 1 : ${ts[1]} }`);
    expect(text).toContain('add rule ip elastic svc_tcp_18301 meta l4proto tcp dnat ip to numgen random mod 2 map @spread_tcp_18301 comment "elastic:tcp-18301"');
    expect(text).toContain('add set ip elastic cnt_tcp_18301 { type ipv4_addr . inet_service; counter; }');
    expect(text).toContain('add element ip elastic cnt_tcp_18301 { 198.18.0.2 . 80, 198.18.0.3 . 80 }');
    expect(text).toContain('add rule ip elastic hp_tcp_18301 ip daddr . tcp dport @cnt_tcp_18301 comment "elastic:tcp-18301"');
    expect(text).toContain('add set ip elastic hp_tcp_18301 { type ipv4_addr . ipv4_addr; }');
    expect(text).toContain('add element ip elastic hp_tcp_18301 { 198.18.0.2 . 198.18.0.2, 198.18.0.3 . 198.18.0.3 }');
    expect(text).toContain('add rule ip elastic hp_tcp_18301 ip saddr . ip daddr @hp_tcp_18301 masquerade comment "elastic:tcp-18301"');
    expect(text).toContain('add rule ip elastic prerouting ip daddr 198.18.0.1 tcp dport 18301 jump svc_tcp_18301 comment "elastic:tcp-18301"');
    expect(text).toContain('add chain ip elastic prerouting { type nat hook prerouting priority -101; policy accept; }');
    // chains and sets are declared before any element or rule refers to them
    const lines = text.split('\n');
    const lastDecl = Math.max(...lines.map((l, i) => (/^add (chain|map|set) /.test(l) ? i : -1)));
    const firstRule = lines.findIndex((l) => /^add rule /.test(l));
    expect(lastDecl).toBeLessThan(firstRule);
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(add|flush|delete) (table|chain|rule|counter|map|set|element) ip elastic\b/);
  });

  it('cache path: one more backend = one element in each set and a new mod; no chain, no large object replaced', () => {
    const before = renderNft([toRuleMapping(entry(18300, [2, 3]))]);
    const after = renderNft([toRuleMapping(entry(18300, [2, 3, 4]))], nftKernelFrom(before));
    expect(planNft(after, nftKernelFrom(before), before).split('\n').filter(Boolean)).toEqual([
      'add element ip elastic spread_tcp_18300 { 2 : 198.18.0.4 . 80 }',
      'add element ip elastic cnt_tcp_18300 { 198.18.0.4 . 80 }',
      'add element ip elastic hp_tcp_18300 { 198.18.0.4 . 198.18.0.4 }',
      'flush chain ip elastic svc_tcp_18300',
      'add rule ip elastic svc_tcp_18300 meta l4proto tcp dnat ip to numgen random mod 3 map @spread_tcp_18300 comment "elastic:tcp-18300"',
    ]);
  });

  it('cache path: removing a backend moves the last slot into its hole (slots stay 0..n-1)', () => {
    const before = renderNft([toRuleMapping(entry(18300, [2, 3, 4]))]);
    const slots = before.sets.get('spread_tcp_18300')!.elements;
    const n = Number(/198\.18\.0\.(\d+)/.exec(slots[0]!)![1]);
    const after = renderNft([toRuleMapping(entry(18300, [2, 3, 4].filter((i) => i !== n)))], nftKernelFrom(before));
    expect(after.sets.get('spread_tcp_18300')!.elements).toEqual([slots[2], slots[1]]);
    const text = planNft(after, nftKernelFrom(before), before);
    expect(text).toContain(`delete element ip elastic spread_tcp_18300 { 0, 2 }\nadd element ip elastic spread_tcp_18300 { 0 : ${slots[2]} }\n`);
    expect(text).toContain(`delete element ip elastic cnt_tcp_18300 { 198.18.0.${n} . 80 }`);
    expect(text).toContain(`delete element ip elastic hp_tcp_18300 { 198.18.0.${n} . 198.18.0.${n} }`);
    expect(planNft(EMPTY_NFT, nftKernelFrom(before))).toBe('delete table ip elastic\n');
    expect(planNft(EMPTY_NFT, EMPTY_NFT_KERNEL)).toBe('');
  });

  it('full path: reads the kernel (chains, maps with slots, sets with counters) and diffs elements, strays of the first layout deleted', () => {
    const text = JSON.stringify({
      nftables: [
        { metainfo: {} },
        { table: { family: 'ip', name: 'elastic' } },
        { chain: { family: 'ip', table: 'elastic', name: 'svc_tcp_18300' } },
        { chain: { family: 'ip', table: 'elastic', name: 'be_0123' } },
        { chain: { family: 'ip', table: 'other', name: 'x' } },
        { counter: { family: 'ip', table: 'elastic', name: 'be_0123', packets: 3, bytes: 180 } },
        { map: { family: 'ip', table: 'elastic', name: 'spread_tcp_18300', elem: [[1, { concat: ['198.18.0.2', 80] }], [0, { concat: ['198.18.0.9', 80] }]] } },
        { set: { family: 'ip', table: 'elastic', name: 'cnt_tcp_18300', elem: [{ elem: { val: { concat: ['198.18.0.2', 80] }, counter: { packets: 7, bytes: 420 } } }, { elem: { val: { concat: ['198.18.0.9', 80] }, counter: { packets: 1, bytes: 60 } } }] } },
        { set: { family: 'ip', table: 'elastic', name: 'hp_tcp_9', elem: [{ concat: ['198.18.0.2', '198.18.0.2'] }] } },
      ],
    });
    const kernel = parseNftJson(text);
    expect(kernel.exists).toBe(true);
    expect([...kernel.chains]).toEqual(['svc_tcp_18300', 'be_0123']);
    expect(kernel.sets.get('spread_tcp_18300')!.elements).toEqual(['198.18.0.9 . 80', '198.18.0.2 . 80']);
    expect(kernel.counters.get('cnt_tcp_18300')!.get('198.18.0.2 . 80')).toEqual({ packets: 7, bytes: 420 });
    const m = toRuleMapping(entry(18300, [2, 3]));
    expect(k(m)).toMatch(/^198\.18\.0\.[23] \. 80$/);
    const plan = planNft(renderNft([m], kernel), kernel);
    // 198.18.0.2 keeps slot 1; 0.9 leaves slot 0 to 0.3; its counter element goes, 0.2's stays (and keeps its count)
    expect(plan).toContain('delete element ip elastic spread_tcp_18300 { 0 }\nadd element ip elastic spread_tcp_18300 { 0 : 198.18.0.3 . 80 }');
    expect(plan).toContain('delete element ip elastic cnt_tcp_18300 { 198.18.0.9 . 80 }\nadd element ip elastic cnt_tcp_18300 { 198.18.0.3 . 80 }');
    expect(plan).toContain('delete set ip elastic hp_tcp_9');
    expect(plan).toContain('flush chain ip elastic be_0123\n');
    expect(plan).toContain('delete chain ip elastic be_0123\n');
    expect(plan).toContain('delete counter ip elastic be_0123\n');
  });

  it('assignSlots: a dense permutation of the wanted targets that keeps every kept target where it was when it can', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), (a, b) => {
        const prev = assignSlots(undefined, a.map(String));
        const next = assignSlots(prev, b.map(String));
        expect([...next].sort()).toEqual(b.map(String).sort());
        const moved = next.filter((c, i) => prev.includes(c) && prev[i] !== c).length;
        // only targets from above the new length move (into holes), at most one per removed target
        expect(moved).toBeLessThanOrEqual(prev.filter((c) => !b.map(String).includes(c)).length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('refusal', () => {
  it('names the failing line of our text (iptables-restore and nft formats)', () => {
    const text = '*nat\n:ELASTIC-X - [0:0]\n-A ELASTIC-X -j NOPE\nCOMMIT\n';
    const e = refusal('iptables', text, "iptables-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\nError occurred at line: 3\nTry `iptables-restore -h'");
    expect(e.exitCode).toBe(6);
    expect(e.message).toContain('at line 3 (-A ELASTIC-X -j NOPE)');
    expect(e.message).toContain("Chain 'NOPE' does not exist");
    const n = refusal('nft', 'add table ip elastic\nadd rule ip elastic nochain accept\n', '/tmp/x/rules.nft:2:21-27: Error: Could not process rule: No such file or directory');
    expect(n.message).toContain('at line 2 (add rule ip elastic nochain accept)');
    expect(n.hint).toMatch(/previous rules are still in force/);
  });
});

describe('namespaces (one per state directory)', () => {
  const other = namespaceFor('/tmp/mapimg-unit-state');
  it('the default state directory keeps the documented names; another gets elastic_<h> / ELASTIC-<h>-', () => {
    // the default is the directory elastic uses without ELASTIC_STATE_DIR, whatever the variable says now
    expect(namespaceFor(stateDir({}), { ELASTIC_STATE_DIR: '/tmp/x' })).toBe(DEFAULT_NAMESPACE);
    expect(namespaceOfEnv({ ELASTIC_STATE_DIR: '/tmp/mapimg-unit-state' })).toEqual(other);
    expect(other.nftTable).toMatch(/^elastic_[0-9a-f]{6}$/);
    expect(other.chainPrefix).toBe(`ELASTIC-${other.id}-`);
    expect(namespaceFor('/tmp/mapimg-unit-state/')).toEqual(other);
  });

  it('every chain name fits iptables (28 characters), in every namespace', () => {
    const m = toRuleMapping(entry(65535, [2], { id: 'udp-65535', protocol: 'udp' }));
    for (const ns of [DEFAULT_NAMESPACE, other]) {
      const r = renderIptables([m], [m], 'DOCKER-USER', ns);
      for (const chain of [...r.nat.keys(), ...r.filter.keys()]) {
        expect(chain.length).toBeLessThanOrEqual(28);
        expect(ownsChain(ns, chain)).toBe(true);
        expect(ownsChain(ns === other ? DEFAULT_NAMESPACE : other, chain)).toBe(false);
      }
    }
  });

  it('a kernel read sees only its own namespace: the other one is not a stray', () => {
    const mine = renderIptables([toRuleMapping(entry(18300, [2]))], [], undefined, other);
    const theirs = renderIptables([toRuleMapping(entry(18301, [3]))], [], undefined);
    const save = ['*nat', ...[...mine.nat.keys(), ...theirs.nat.keys()].map((c) => `:${c} - [0:0]`), `-A PREROUTING -m comment --comment elastic:hook -j ${other.chainPrefix}PREROUTING`, '-A PREROUTING -m comment --comment elastic:hook -j ELASTIC-PREROUTING', 'COMMIT'].join('\n');
    const k = parseIptablesSave(save, other);
    expect([...k.chains.nat.keys()].sort()).toEqual([...mine.nat.keys()].sort());
    expect([...k.hooks.keys()]).toEqual([`nat PREROUTING ${other.chainPrefix}PREROUTING`]);
    const d = parseIptablesSave(save);
    expect([...d.chains.nat.keys()].sort()).toEqual([...theirs.nat.keys()].sort());
    // Removing everything of the default namespace leaves the other one alone (and vice versa).
    expect(planIptables({ desired: EMPTY_IPT, kernel: d })).not.toContain(other.chainPrefix);
    expect(planIptables({ desired: EMPTY_IPT, kernel: k })).not.toMatch(/ELASTIC-(?![0-9a-f]{6}-)/);
    expect(planNft(EMPTY_NFT, { ...EMPTY_NFT_KERNEL, exists: true }, undefined, other.nftTable)).toBe(`delete table ip ${other.nftTable}\n`);
  });
});
