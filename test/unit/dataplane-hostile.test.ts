import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toRuleMapping, type MappingEntry } from '../../src/engine/dataplane/model.js';
import { planIptables, renderIptables } from '../../src/engine/dataplane/iptables.js';
import { EMPTY_NFT_KERNEL, planNft, renderNft } from '../../src/engine/dataplane/nft.js';
import { toMappingBackends, upsertMapping } from '../../src/engine/map-image.js';
import { EMPTY_STATE } from '../../src/engine/dataplane/model.js';
import type { Backend } from '../../src/engine/model/backend.js';

/**
 * Injection safety: whatever names, labels and image references containers carry, the rules are
 * a function of the mapping id, addresses and ports alone. Hostile text is generated around
 * the classic attacks (quotes, newlines, option-like text, nft statements).
 */
const hostile = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('"; flush ruleset', '--jump ACCEPT', '-j ACCEPT\n-A INPUT -j ACCEPT', "'; delete table ip filter", 'a b\nCOMMIT\n*filter', '} ; add rule ip filter INPUT accept', '\u001b[2J', '$(reboot)', '`id`'),
);
const octet = fc.integer({ min: 1, max: 254 });
const backendArb = fc.record({
  n: fc.tuple(octet, octet),
  port: fc.integer({ min: 1, max: 65535 }),
  name: hostile,
  labelKey: hostile,
  labelValue: hostile,
  image: hostile,
});

function toBackend(b: { n: [number, number]; port: number; name: string; labelKey: string; labelValue: string; image: string }, blank: boolean): Backend {
  const address = `198.18.${b.n[0]}.${b.n[1]}`;
  return {
    id: `docker:${b.n[0]}-${b.n[1]}-${b.port}`,
    name: blank ? 'x' : b.name,
    service: 'web',
    source: 'docker',
    address,
    port: b.port,
    state: 'running',
    health: 'none',
    labels: blank ? {} : { [b.labelKey]: b.labelValue },
    image: blank ? 'x' : b.image,
    since: '2026-01-01T00:00:00Z',
  };
}

function rulesFor(backends: Backend[], image: string): { ipt: string; nft: string } {
  const spec = { id: 'tcp-18300', protocol: 'tcp' as const, port: 18300, image, containerPort: 80, staticBackends: [], dataplane: 'nft' as const, created: 'now' };
  const state = upsertMapping(EMPTY_STATE, spec, toMappingBackends(backends));
  const rm = state.mappings.map((e: MappingEntry) => toRuleMapping(e));
  const ipt = planIptables({ desired: renderIptables(rm, rm, 'DOCKER-USER'), kernel: { chains: { nat: new Map(), filter: new Map() }, hooks: new Map(), counters: new Map() } });
  const nft = planNft(renderNft(rm), EMPTY_NFT_KERNEL);
  return { ipt, nft };
}

describe('hostile container names, labels and images', () => {
  it('cannot change the rules beyond the intended addresses', () => {
    fc.assert(
      fc.property(fc.array(backendArb, { minLength: 1, maxLength: 6 }), hostile, (raw, image) => {
        const real = rulesFor(raw.map((b) => toBackend(b, false)), image);
        const blank = rulesFor(raw.map((b) => toBackend(b, true)), 'x');
        // The text is identical to the one made with harmless names: names never reach a rule.
        expect(real).toEqual(blank);
        const allowed = new Set(raw.map((b) => `198.18.${b.n[0]}.${b.n[1]}`));
        for (const text of [real.ipt, real.nft]) {
          for (const line of text.trim().split('\n')) {
            expect(line).not.toMatch(/flush ruleset|INPUT|reboot|\$\(|`/);
            for (const ip of line.match(/\b\d+\.\d+\.\d+\.\d+\b/g) ?? []) expect(ip === '127.0.0.0' || allowed.has(ip)).toBe(true);
          }
          expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
        }
        for (const line of real.ipt.trim().split('\n')) expect(line).toMatch(/^(\*nat|\*filter|COMMIT|:ELASTIC-[A-Za-z0-9-]+ - \[0:0\]|-A ELASTIC-[A-Za-z0-9-]+ |-I (PREROUTING|OUTPUT|POSTROUTING|DOCKER-USER) 1 -m comment --comment "elastic:hook" -j ELASTIC-)/);
        for (const line of real.nft.trim().split('\n')) expect(line).toMatch(/^(add|flush|delete) (table|chain|rule|counter|map|set|element) ip elastic( [a-z0-9_]+)?( |$)/);
      }),
      { numRuns: 300 },
    );
  });
});
