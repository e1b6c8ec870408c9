import { describe, expect, it } from 'vitest';
import { adoptFromKernel, mappingsInIptablesSave, mappingsInNftMaps, targetsUnknownTo } from '../../src/engine/dataplane/kernel-mappings.js';
import { shapeProblem } from '../../src/engine/dataplane/store.js';
import { EMPTY_STATE } from '../../src/engine/dataplane/model.js';

describe('mappings read from the kernel (every namespace)', () => {
  it('iptables-save: SVC chains and DNAT targets, per namespace', () => {
    const text = [
      '*nat',
      ':ELASTIC-abc123-SVC-TCP-80 - [0:0]',
      ':ELASTIC-SVC-UDP-53 - [0:0]',
      ':ELASTIC-SVC-TCP-99999 - [0:0]',
      '-A ELASTIC-abc123-BE-0123456789 -p tcp -m comment --comment "elastic:tcp-80 198.18.0.5:80" -m tcp -j DNAT --to-destination 198.18.0.5:80',
      '-A OTHER -m comment --comment "elastic:tcp-81 198.18.0.6:80" -j DNAT --to-destination 198.18.0.6:80',
    ].join('\n');
    expect(mappingsInIptablesSave(text)).toEqual([
      { namespace: '', id: 'udp-53', dataplane: 'iptables', targets: [] },
      { namespace: 'abc123', id: 'tcp-80', dataplane: 'iptables', targets: ['198.18.0.5:80'] },
    ]);
  });

  it('nft maps: only spread maps of elastic tables', () => {
    const map = (table: string, name: string, elem: unknown[]) => ({ map: { family: 'ip', table, name, elem } });
    const text = JSON.stringify({
      nftables: [
        { metainfo: {} },
        map('elastic', 'spread_tcp_80', [[0, { concat: ['198.18.0.9', 80] }], [1, { concat: ['198.18.0.5', 80] }]]),
        map('elastic_d5b8a1', 'spread_udp_53', []),
        map('nat', 'spread_tcp_81', []),
        map('elastic', 'other_tcp_82', []),
      ],
    });
    expect(mappingsInNftMaps(text)).toEqual([
      { namespace: '', id: 'tcp-80', dataplane: 'nft', targets: ['198.18.0.5:80', '198.18.0.9:80'] },
      { namespace: 'd5b8a1', id: 'udp-53', dataplane: 'nft', targets: [] },
    ]);
  });

  it('nft maps read in two steps: every map listed without elements, then some whole', () => {
    const doc = (...maps: unknown[]) => JSON.stringify({ nftables: [{ metainfo: {} }, ...maps] });
    const terse = doc({ map: { family: 'ip', table: 'elastic', name: 'spread_tcp_80' } }, { map: { family: 'ip', table: 'elastic_d5b8a1', name: 'spread_tcp_81' } }, { map: { family: 'ip6', table: 'elastic', name: 'spread_tcp_80' } });
    const whole = doc({ map: { family: 'ip6', table: 'elastic', name: 'spread_tcp_80', elem: [[0, { concat: ['2001:2::5', 80] }]] } });
    expect(mappingsInNftMaps(terse, whole)).toEqual([
      { namespace: '', id: 'tcp-80', dataplane: 'nft', targets: ['[2001:2::5]:80'] },
      { namespace: 'd5b8a1', id: 'tcp-81', dataplane: 'nft', targets: [] },
    ]);
  });

  it.each([
    ['ours, in the state file', '', 'tcp-80', false],
    ['ours, lost from the state file', '', 'tcp-81', true],
    ['another namespace, a port we map (conflict)', 'd5b8a1', 'tcp-80', true],
    ['another namespace, another port', 'd5b8a1', 'tcp-81', false],
  ])('list reads from the kernel the backends of a mapping: %s', (_, namespace, id, wanted) => {
    const state = { ...EMPTY_STATE, mappings: [{ spec: { id: 'tcp-80' } }] } as unknown as typeof EMPTY_STATE;
    expect(targetsUnknownTo({ id: '' } as Parameters<typeof targetsUnknownTo>[0], state)(namespace, id)).toBe(wanted);
  });

  it('adopting kernel-only mappings: image-less entries, known ones untouched', () => {
    const s = adoptFromKernel(EMPTY_STATE, [{ namespace: '', id: 'tcp-80', dataplane: 'nft', targets: ['198.18.0.5:8080'] }], 'T');
    expect(s.mappings).toEqual([
      {
        spec: { id: 'tcp-80', protocol: 'tcp', port: 80, image: '', containerPort: 8080, staticBackends: [], dataplane: 'nft', created: 'T' },
        backends: [{ id: 'kernel:198.18.0.5:8080', name: '198.18.0.5:8080', address: '198.18.0.5', port: 8080 }],
        draining: [],
        updated: 'T',
      },
    ]);
    expect(adoptFromKernel(s, [{ namespace: '', id: 'tcp-80', dataplane: 'nft', targets: [] }])).toBe(s);
  });
});

describe('state file shape', () => {
  const good = { v: 1, generation: 1, mappings: [{ spec: { id: 'tcp-80', protocol: 'tcp', port: 80, image: 'x', containerPort: 80, staticBackends: [], dataplane: 'nft', created: 'T' }, backends: [], draining: [], updated: 'T' }] };
  it.each([
    [good, ''],
    [[], 'not an object'],
    [{ v: 2 }, 'version 2, expected 1'],
    [{ v: 1, generation: 1, mappings: [{}] }, 'mappings[0].spec is missing'],
    [{ ...good, mappings: [{ ...good.mappings[0], backends: [{ id: 1 }] }] }, 'mappings[0].backends'],
    [{ ...good, mappings: [{ ...good.mappings[0], spec: { ...good.mappings[0]!.spec, id: 'tcp-0' } }] }, 'mappings[0].spec.id is not a mapping id'],
  ])('%j -> %s', (s, problem) => {
    expect(shapeProblem(s)).toBe(problem);
  });
});
