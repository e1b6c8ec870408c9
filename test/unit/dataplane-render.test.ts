import { describe, expect, it } from 'vitest';
import { backendHash, toRuleMapping, type MappingEntry, type MappingSpec } from '../../src/engine/dataplane/model.js';
import {
  EMPTY_IPT,
  backendChain,
  parseIptablesSave,
  planIptables,
  probability,
  renderIptables,
  type IptKernel,
} from '../../src/engine/dataplane/iptables.js';
import { EMPTY_NFT, nftKernelFrom, parseNftJson, planNft, renderNft } from '../../src/engine/dataplane/nft.js';
import { refusal } from '../../src/engine/dataplane/exec.js';

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
  it('keeps only valid IPv4 targets, without duplicates or drained ones, sorted by hash', () => {
    const e: MappingEntry = {
      ...entry(18300, [2, 3]),
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
  it('golden: numgen vmap over per-backend chains with named counters, --address match', () => {
    const m = toRuleMapping(entry(18301, [2, 3], { id: 'tcp-18301', address: '198.18.0.1' }));
    const text = planNft(renderNft([m]), { exists: false, chains: new Set(), counters: new Map() });
    const hs = m.targets.map((t) => t.hash);
    expect(text.split('\n')[0]).toBe('add table ip elastic');
    expect(text).toContain(`add rule ip elastic svc_tcp_18301 numgen random mod 2 vmap { 0 : jump be_${hs[0]}, 1 : jump be_${hs[1]} } comment "elastic:tcp-18301"`);
    expect(text).toContain(`add rule ip elastic be_${backendHash('tcp-18301', '198.18.0.2', 80)} meta l4proto tcp counter name "be_${backendHash('tcp-18301', '198.18.0.2', 80)}" dnat to 198.18.0.2:80 comment "elastic:tcp-18301 198.18.0.2:80"`);
    expect(text).toContain('add rule ip elastic prerouting ip daddr 198.18.0.1 tcp dport 18301 jump svc_tcp_18301 comment "elastic:tcp-18301"');
    expect(text).toContain('add chain ip elastic prerouting { type nat hook prerouting priority -101; policy accept; }');
    // chains are declared before any rule jumps to them
    const lines = text.split('\n');
    const lastChain = Math.max(...lines.map((l, i) => (l.startsWith('add chain') ? i : -1)));
    const firstRule = lines.findIndex((l) => l.startsWith('add rule'));
    expect(lastChain).toBeLessThan(firstRule);
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(add|flush|delete) (table|chain|rule|counter) ip elastic\b/);
  });

  it('cache path: one more backend = its counter, chain and the svc/hairpin rewrite; the rest untouched', () => {
    const before = renderNft([toRuleMapping(entry(18300, [2, 3]))]);
    const after = renderNft([toRuleMapping(entry(18300, [2, 3, 4]))]);
    const text = planNft(after, nftKernelFrom(before), before);
    const h4 = `be_${backendHash('tcp-18300', '198.18.0.4', 80)}`;
    expect(text.split('\n').filter(Boolean)).toEqual([
      `add counter ip elastic ${h4}`,
      `add chain ip elastic ${h4}`,
      'flush chain ip elastic svc_tcp_18300',
      expect.stringMatching(/^add rule ip elastic svc_tcp_18300 numgen random mod 3 vmap/),
      'flush chain ip elastic hp_tcp_18300',
      expect.stringMatching(/^add rule ip elastic hp_tcp_18300 ip saddr \. ip daddr/),
      expect.stringMatching(new RegExp(`^add rule ip elastic ${h4} meta l4proto tcp counter name`)),
    ]);
  });

  it('removing a backend flushes and deletes its chain and counter; no mapping deletes the table', () => {
    const before = renderNft([toRuleMapping(entry(18300, [2, 3]))]);
    const after = renderNft([toRuleMapping(entry(18300, [2]))]);
    const h3 = `be_${backendHash('tcp-18300', '198.18.0.3', 80)}`;
    const text = planNft(after, nftKernelFrom(before), before);
    expect(text).toMatch(new RegExp(`flush chain ip elastic ${h3}\ndelete chain ip elastic ${h3}\ndelete counter ip elastic ${h3}\n$`));
    expect(planNft(EMPTY_NFT, nftKernelFrom(before))).toBe('delete table ip elastic\n');
    expect(planNft(EMPTY_NFT, { exists: false, chains: new Set(), counters: new Map() })).toBe('');
  });

  it('reads chains and counters from nft -j', () => {
    const k = parseNftJson(
      JSON.stringify({
        nftables: [
          { metainfo: {} },
          { table: { family: 'ip', name: 'elastic' } },
          { chain: { family: 'ip', table: 'elastic', name: 'svc_tcp_1' } },
          { chain: { family: 'ip', table: 'other', name: 'x' } },
          { counter: { family: 'ip', table: 'elastic', name: 'be_1', packets: 3, bytes: 180 } },
        ],
      }),
    );
    expect(k.exists).toBe(true);
    expect([...k.chains]).toEqual(['svc_tcp_1']);
    expect(k.counters.get('be_1')).toEqual({ packets: 3, bytes: 180 });
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
