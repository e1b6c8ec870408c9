import { describe, expect, it } from 'vitest';
import type Docker from 'dockerode';
import { backendAddressProblem, canonicalAddress, drainGroup, endpointKey, familyMapping, toRuleMapping, type MappingBackend, type MappingEntry, type MappingSpec } from '../../src/engine/dataplane/model.js';
import { EMPTY_NFT_KERNEL, parseNftJson, planNft, renderNft } from '../../src/engine/dataplane/nft.js';
import { clientsOf } from '../../src/engine/dataplane/affinity.js';
import { adoptFromKernel, mappingsInNftMaps } from '../../src/engine/dataplane/kernel-mappings.js';
import { touchesOurs } from '../../src/engine/dataplane/nft-monitor.js';
import { undrainMapping } from '../../src/engine/dataplane/watch.js';
import { parseContainer } from '../../src/engine/discovery/docker/parse.js';
import { stoppingEndpoints, toMappingBackends, upsertMapping } from '../../src/engine/map-image.js';
import { EMPTY_STATE } from '../../src/engine/dataplane/model.js';
import type { Backend } from '../../src/engine/model/backend.js';

/** Issue 18, IPv6 / dual stack: addresses, the ip6 table's rule text, kernel reads (pure). */
const spec = (extra: Partial<MappingSpec> = {}): MappingSpec => ({ id: 'tcp-28100', protocol: 'tcp', port: 28100, image: 'web:1', containerPort: 80, staticBackends: [], dataplane: 'nft', created: '2026-01-01T00:00:00Z', ...extra });
const be = (address: string, weight?: number): MappingBackend => ({ id: `static:${address}`, name: address, address, port: 80, ...(weight === undefined ? {} : { weight }) });
const entry = (backends: MappingBackend[], extra: Partial<MappingSpec> = {}, draining: string[] = []): MappingEntry => ({ spec: spec(extra), backends, draining, updated: '2026-01-01T00:00:00Z' });
const dual = [be('198.18.92.2'), be('2001:2:0:92::2'), be('198.18.92.3'), be('2001:2:0:92::3')];

describe('IPv6 addresses', () => {
  it.each([
    ['2001:2:0:92::2', '2001:2:0:92::2'],
    ['2001:0002:0000:0092:0000:0000:0000:0002', '2001:2:0:92::2'],
    ['2001:2:0:0:1:0:0:5', '2001:2::1:0:0:5'],
    ['2001:DB8::A', '2001:db8::a'],
    ['2001:2:0:1:2:3:4:5', '2001:2:0:1:2:3:4:5'],
    ['198.18.0.5', '198.18.0.5'],
    ['fe80::1%eth0', ''],
    ['not an address', ''],
    ['2001:2::5 . 80', ''],
  ])('canonicalAddress(%s) = %s', (input, want) => expect(canonicalAddress(input)).toBe(want));

  it.each([
    ['198.18.0.5', 80, '198.18.0.5:80'],
    ['2001:2::5', 80, '[2001:2::5]:80'],
  ])('endpointKey(%s, %d) = %s', (a, p, want) => expect(endpointKey(a, p)).toBe(want));

  it.each([
    ['2001:2::5', ''],
    ['::', 'the unspecified address (::)'],
    ['::1', 'the loopback address (::1)'],
    ['::ffff:198.18.0.5', 'an IPv4-mapped address (::ffff:0:0/96); give the IPv4 address'],
    ['fe80::1', 'a link-local address (fe80::/10)'],
    ['febf::1', 'a link-local address (fe80::/10)'],
    ['ff02::1', 'a multicast address (ff00::/8)'],
    ['127.0.0.1', 'a loopback address (127.0.0.0/8)'],
    ['x', 'not an IP address'],
  ])('backendAddressProblem(%s) = %j', (a, want) => expect(backendAddressProblem(a)).toBe(want));
});

describe('which families a mapping is programmed in', () => {
  it.each([
    ['IPv4 backends only: the ip table, as before', entry([be('198.18.92.2')]), ['ip']],
    ['dual-stack backends: both tables', entry(dual), ['ip', 'ip6']],
    ['an IPv6 backend drained still keeps the ip6 side (its flows finish)', entry([be('198.18.92.2'), be('2001:2::9')], {}, ['[2001:2::9]:80']), ['ip', 'ip6']],
    ['--address IPv6: only ip6', entry(dual, { address: '2001:2:1:92::1' }), ['ip6']],
    ['--address IPv4: only ip', entry(dual, { address: '198.18.92.1' }), ['ip']],
    ['iptables: IPv6 backends are not targets', entry(dual, { dataplane: 'iptables' }), ['ip']],
  ])('%s', (_, e, families) => {
    expect(toRuleMapping(e).families).toEqual(families);
  });

  it('each table gets its family’s targets; an IPv4-only mapping is the same object in the ip table', () => {
    const m = toRuleMapping(entry(dual));
    expect(familyMapping(m, 'ip')!.targets.map((t) => t.address).sort()).toEqual(['198.18.92.2', '198.18.92.3']);
    expect(familyMapping(m, 'ip6')!.targets.map((t) => t.address).sort()).toEqual(['2001:2:0:92::2', '2001:2:0:92::3']);
    const v4 = toRuleMapping(entry([be('198.18.92.2')]));
    expect(familyMapping(v4, 'ip')).toBe(v4);
    expect(familyMapping(v4, 'ip6')).toBeNull();
  });

  it('a non-canonical IPv6 address in the state never reaches rule text', () => {
    expect(toRuleMapping(entry([be('2001:0002::5')])).targets).toEqual([]);
    expect(() => toRuleMapping(entry([], { address: '2001:0002::1' }))).toThrow(/invalid mapping address/);
  });
});

describe('the ip6 table', () => {
  const rules = (e: MappingEntry, chain: string) => renderNft([toRuleMapping(e)], undefined, 'ip6').chains.get(chain)!.rules;

  it.each([
    ['hash', entry(dual, { spread: 'hash' }), 'svc_tcp_28100', ['meta l4proto tcp dnat ip6 to jhash ip6 saddr . th sport . ip6 daddr . th dport . meta l4proto mod 32749 seed 0x656c6173 map @spread_tcp_28100 comment "elastic:tcp-28100"']],
    ['random', entry(dual), 'svc_tcp_28100', ['meta l4proto tcp dnat ip6 to numgen random mod 2 map @spread_tcp_28100 comment "elastic:tcp-28100"']],
    ['any address', entry(dual), 'output', ['ip6 daddr != ::1 tcp dport 28100 fib daddr type local jump svc_tcp_28100 comment "elastic:tcp-28100"']],
    ['--address', entry(dual, { address: '2001:2:1:92::1' }), 'prerouting', ['ip6 daddr 2001:2:1:92::1 tcp dport 28100 jump svc_tcp_28100 comment "elastic:tcp-28100"']],
    ['counters and hairpin', entry(dual), 'hp_tcp_28100', ['ip6 daddr . tcp dport @cnt_tcp_28100 comment "elastic:tcp-28100"', 'ip6 saddr . ip6 daddr @hp_tcp_28100 masquerade comment "elastic:tcp-28100"']],
    [
      'affinity: address and port in two maps (nft 1.0.6 aborts on an ipv6_addr . inet_service update)',
      entry(dual, { affinityS: 60 }),
      'svc_tcp_28100',
      ['meta l4proto tcp dnat ip6 to ip6 saddr map @aff_tcp_28100_60 : ip6 saddr map @aff_tcp_28100_60_port comment "elastic:tcp-28100"', expect.stringMatching(/^meta l4proto tcp dnat ip6 to numgen/)],
    ],
    ['affinity is recorded in both', entry(dual, { affinityS: 60 }), 'hp_tcp_28100', [expect.stringMatching(/^update @aff_tcp_28100_60 \{ ip6 saddr : ip6 daddr \} update @aff_tcp_28100_60_port \{ ip6 saddr : tcp dport \} /), expect.anything(), expect.anything()]],
  ])('%s', (_, e, chain, want) => expect(rules(e, chain)).toEqual(want));

  it('sets are typed ipv6_addr and hold only the IPv6 targets', () => {
    const sets = renderNft([toRuleMapping(entry(dual, { affinityS: 60 }))], undefined, 'ip6').sets;
    expect(sets.get('cnt_tcp_28100')).toMatchObject({ decl: 'type ipv6_addr . inet_service; counter;', elements: ['2001:2:0:92::2 . 80', '2001:2:0:92::3 . 80'] });
    expect(sets.get('hp_tcp_28100')!.decl).toBe('type ipv6_addr . ipv6_addr;');
    expect(sets.get('spread_tcp_28100')!.decl).toBe('typeof numgen random mod 2 : ip6 daddr . tcp dport;');
    expect(sets.get('aff_tcp_28100_60_port')!.decl).toMatch(/^type ipv6_addr : inet_service; flags dynamic,timeout; timeout 60s;/);
  });

  it('the ip6 hash table is made of the IPv6 targets alone: adding an IPv4 backend does not move an IPv6 flow', () => {
    const spread = (e: MappingEntry) => renderNft([toRuleMapping(e)], undefined, 'ip6').sets.get('spread_tcp_28100')!.elements;
    expect(spread(entry([...dual, be('198.18.92.9')], { spread: 'hash' }))).toEqual(spread(entry(dual, { spread: 'hash' })));
  });

  it('plans in the ip6 family; nothing at all for an IPv4-only mapping (no ip6 table is made)', () => {
    const text = planNft(renderNft([toRuleMapping(entry(dual))], EMPTY_NFT_KERNEL, 'ip6'), EMPTY_NFT_KERNEL, undefined, 'elastic', 'ip6');
    expect(text.split('\n')[0]).toBe('add table ip6 elastic');
    expect(text).toContain('add element ip6 elastic cnt_tcp_28100 { 2001:2:0:92::2 . 80, 2001:2:0:92::3 . 80 }');
    expect(text).not.toMatch(/ ip elastic /);
    expect(planNft(renderNft([toRuleMapping(entry([be('198.18.92.2')]))], EMPTY_NFT_KERNEL, 'ip6'), EMPTY_NFT_KERNEL, undefined, 'elastic', 'ip6')).toBe('');
    expect(planNft(renderNft([], { ...EMPTY_NFT_KERNEL, exists: true }, 'ip6'), { ...EMPTY_NFT_KERNEL, exists: true }, undefined, 'elastic', 'ip6')).toBe('delete table ip6 elastic\n');
  });

  it('reads back only the table of its family', () => {
    const json = JSON.stringify({
      nftables: [
        { table: { family: 'ip6', name: 'elastic' } },
        { set: { family: 'ip6', table: 'elastic', name: 'cnt_tcp_28100', elem: [{ elem: { val: { concat: ['2001:2:0:92::2', 80] }, counter: { packets: 3, bytes: 180 } } }] } },
        { set: { family: 'ip', table: 'elastic', name: 'cnt_tcp_28100', elem: [{ elem: { val: { concat: ['198.18.92.2', 80] }, counter: { packets: 1, bytes: 60 } } }] } },
      ],
    });
    const k = parseNftJson(json, 'elastic', 'ip6');
    expect(k.exists).toBe(true);
    expect([...k.counters.get('cnt_tcp_28100')!]).toEqual([['2001:2:0:92::2 . 80', { packets: 3, bytes: 180 }]]);
    expect(parseNftJson(json, 'elastic', 'ip').counters.get('cnt_tcp_28100')!.has('198.18.92.2 . 80')).toBe(true);
  });
});

describe('kernel reads with IPv6', () => {
  it('an ip6 spread map is a mapping with [v6]:port targets, merged with its ip side; adopted back as backends', () => {
    const text = JSON.stringify({
      nftables: [
        { map: { family: 'ip', table: 'elastic_abc123', name: 'spread_tcp_28100', elem: [[0, { concat: ['198.18.92.2', 80] }]] } },
        { map: { family: 'ip6', table: 'elastic_abc123', name: 'spread_tcp_28100', elem: [[0, { concat: ['2001:2:0:92::2', 80] }]] } },
        { map: { family: 'inet', table: 'elastic_abc123', name: 'spread_tcp_28101', elem: [] } },
      ],
    });
    const found = mappingsInNftMaps(text);
    expect(found).toEqual([{ namespace: 'abc123', id: 'tcp-28100', dataplane: 'nft', targets: ['198.18.92.2:80', '[2001:2:0:92::2]:80'] }]);
    const adopted = adoptFromKernel(EMPTY_STATE, found, 'now');
    expect(adopted.mappings[0]!.backends.map((b) => `${b.address} ${b.port}`)).toEqual(['198.18.92.2 80', '2001:2:0:92::2 80']);
  });

  it.each([
    ['an IPv4 map entry (address . port)', [['198.18.9.9', { concat: ['198.18.92.2', 80] }]], ['198.18.9.9']],
    ['an ip6 address map entry (the port is in the _port map)', [['2001:2:1:92::2', '2001:2:0:92::2']], ['2001:2:1:92::2']],
    ['an ip6 entry of a backend that stays', [['2001:2:1:92::6', '2001:2:0:92::3']], []],
    ['a hostile key', [['1.2.3.4; flush ruleset', '2001:2:0:92::2']], []],
  ])('affinity clients to clear: %s', (_, elem, want) => {
    const json = JSON.stringify({ nftables: [{ map: { elem } }] });
    expect(clientsOf(json, new Set(['198.18.92.2:80', '[2001:2:0:92::2]:80']))).toEqual(want);
  });

  it.each([
    ['add element ip6 elastic_abc123 spread_tcp_28100 { 5 : 2001:2::5 . 80 }', true],
    ['add element ip6 elastic_abc123 aff_tcp_28100_60_port { 2001:2::9 : 80 }', false],
    ['add element ip6 other spread_tcp_28100 { 5 : 2001:2::5 . 80 }', false],
  ])('nft monitor: %s touches ours: %s', (line, want) => expect(touchesOurs(line, { id: 'abc123', nftTable: 'elastic_abc123', chainPrefix: 'ELASTIC-abc123-' })).toBe(want));
});

describe('Docker discovery and mapping backends', () => {
  const info = (net: Record<string, unknown>) =>
    ({ Id: 'abcdef0123456789abcdef', Names: ['/web-1'], Image: 'web:1', ImageID: 'sha256:00', Created: 1, Ports: [], Labels: {}, State: 'running', Status: 'Up', NetworkSettings: { Networks: { n: net } } }) as unknown as Docker.ContainerInfo;
  const sel = { labels: [], includeUnhealthy: false, service: 'web', port: 80 };

  it.each([
    ['an IPv6-enabled network: the global IPv6 address too', { IPAddress: '198.18.92.2', GlobalIPv6Address: '2001:2:0:92::2' }, '2001:2:0:92::2'],
    ['no IPv6', { IPAddress: '198.18.92.2', GlobalIPv6Address: '' }, undefined],
    ['garbage is left out (IPv4 still serves)', { IPAddress: '198.18.92.2', GlobalIPv6Address: '2001:2::2 -j ACCEPT' }, undefined],
  ])('%s', (_, net, want) => {
    const r = parseContainer(info(net), sel, null);
    expect(r && r.ok ? r.backend.address6 : 'skipped').toBe(want);
  });

  const backend = (over: Partial<Backend>): Backend => ({ id: 'docker:abc', name: 'web-1', service: 'web', source: 'docker', address: '198.18.92.2', port: 80, state: 'running', health: 'none', labels: {}, since: 'now', ...over });

  it('a dual-stack container is two mapping backends of one id; a draining one drains both', () => {
    const b = backend({ address6: '2001:0002:0:92::2', labels: { 'elastic.weight': '2' } });
    expect(toMappingBackends([b])).toEqual([
      { id: 'docker:abc', name: 'web-1', address: '198.18.92.2', port: 80, weight: 2 },
      { id: 'docker:abc', name: 'web-1', address: '2001:2:0:92::2', port: 80, weight: 2 },
    ]);
    expect(stoppingEndpoints([{ ...b, state: 'draining' }])).toEqual(['198.18.92.2:80', '[2001:2:0:92::2]:80']);
    expect(toMappingBackends([backend({ address: '2001:2::7' })]).map((x) => x.address)).toEqual(['2001:2::7']);
    expect(toMappingBackends([backend({ address6: 'fe80::1' })]).map((x) => x.address)).toEqual(['198.18.92.2']);
  });

  it.each([
    ['nft, no --address: both families', spec(), ['198.18.92.2', '2001:2:0:92::2']],
    ['nft, --address IPv6: IPv6 only', spec({ address: '2001:2:1:92::1' }), ['2001:2:0:92::2']],
    ['nft, --address IPv4: IPv4 only', spec({ address: '198.18.92.1' }), ['198.18.92.2']],
    ['iptables: IPv4 only', spec({ dataplane: 'iptables' }), ['198.18.92.2']],
  ])('the state keeps the backends the mapping serves: %s', (_, s, want) => {
    const after = upsertMapping(EMPTY_STATE, s, toMappingBackends([backend({ address6: '2001:2:0:92::2' })]));
    expect(after.mappings[0]!.backends.map((b) => b.address)).toEqual(want);
  });
});

describe('drain and undrain of a dual-stack container', () => {
  const c = (address: string, id = 'docker:abc'): MappingBackend => ({ id, name: 'web-1', address, port: 80 });
  const e = entry([c('198.18.92.2'), c('2001:2:0:92::2'), c('198.18.92.3', 'docker:def'), c('2001:2:0:92::3', 'docker:def'), be('2001:2::9'), be('198.18.92.9')]);
  it.each([
    ['its IPv4 address stands for both endpoints', '198.18.92.2:80', ['198.18.92.2:80', '[2001:2:0:92::2]:80']],
    ['its IPv6 address too', '[2001:2:0:92::3]:80', ['198.18.92.3:80', '[2001:2:0:92::3]:80']],
    ['static backends are separate endpoints', '198.18.92.9:80', ['198.18.92.9:80']],
    ['unknown: none', '198.18.92.7:80', []],
  ])('%s', (_, key, want) => expect(drainGroup(e, key).map((b) => endpointKey(b.address, b.port))).toEqual(want));

  it('undrain by one address puts both endpoints back', () => {
    const state = { ...EMPTY_STATE, mappings: [{ ...e, draining: ['198.18.92.2:80', '[2001:2:0:92::2]:80', '198.18.92.9:80'] }] };
    expect(undrainMapping(state, 'tcp-28100', '198.18.92.2:80').mappings[0]!.draining).toEqual(['198.18.92.9:80']);
  });
});
