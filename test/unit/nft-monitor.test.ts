import { describe, expect, it } from 'vitest';
import { FULL_READ_EVERY, driftParser, fullReadDue, touchesOurs } from '../../src/engine/dataplane/nft-monitor.js';
import { DEFAULT_NAMESPACE, type Namespace } from '../../src/engine/dataplane/namespace.js';

const NS: Namespace = { id: 'ab12cd', nftTable: 'elastic_ab12cd', chainPrefix: 'ELASTIC-ab12cd-' };

/** Issue 18: which `nft monitor` batches are drift of our rules, and when a periodic resync reads the kernel. */
describe('nft monitor lines', () => {
  it.each([
    ['delete element ip elastic_ab12cd spread_tcp_80 { 5 : 198.18.0.2 . 80 }', true],
    ['flush chain ip elastic_ab12cd svc_tcp_80', true],
    ['delete table ip elastic_ab12cd', true],
    ['add element ip elastic_ab12cd aff_tcp_80_10800 { 198.19.0.1 : 198.18.0.2 . 80 }', false], // filled by the packet path
    ['delete element ip elastic spread_tcp_80 { 5 : 198.18.0.2 . 80 }', false], // another namespace's table
    ['delete element ip elastic_ab12cdx spread_tcp_80 { 5 }', false],
    ['delete rule ip filter ELASTIC-ab12cd-FORWARD handle 12', true],
    ['delete rule ip filter DOCKER-USER handle 40', true], // may be our hook jump
    ['flush chain ip nat PREROUTING', true],
    ['add chain ip nat ELASTIC-ab12cd-SVC-TCP-80', true],
    // Another state directory's chains (another test run, another instance) are not ours.
    ['delete rule ip filter ELASTIC-ef34ab-FORWARD handle 12', false],
    ['add rule ip filter ELASTIC-ef34ab-FORWARD ct status dnat ct original proto-dst 80 counter accept comment "elastic:tcp-80"', false],
    ['add rule ip filter DOCKER-USER counter jump ELASTIC-ef34ab-FORWARD comment "elastic:hook"', false],
    ['add rule ip nat DOCKER iifname != "docker0" tcp dport 8080 dnat to 198.18.0.9:80', false], // Docker at work
    ['add rule ip filter DOCKER-USER counter return', false],
    ['# new generation 5 by process 10 (nft)', false],
  ])('%s -> %s', (line, ours) => {
    expect(touchesOurs(line, NS)).toBe(ours);
  });

  it.each([
    ['delete rule ip filter ELASTIC-FORWARD handle 3', true],
    ['add rule ip nat ELASTIC-SVC-TCP-80 counter jump ELASTIC-BE-0123456789abcdef', true],
    ['delete rule ip filter ELASTIC-ab12cd-FORWARD handle 3', false], // a namespace's chains are not the default one's
    ['delete element ip elastic_ab12cd spread_tcp_80 { 5 : 198.18.0.2 . 80 }', false],
    ['delete element ip elastic spread_tcp_80 { 5 : 198.18.0.2 . 80 }', true],
  ])('default namespace: %s -> %s', (line, ours) => {
    expect(touchesOurs(line, DEFAULT_NAMESPACE)).toBe(ours);
  });

  it('a batch of another process that touched ours is drift; our own (session or tool pid) is not; others\' batches are not', () => {
    const seen: string[] = [];
    const feed = driftParser(NS, () => [100, 200], (why) => seen.push(why));
    for (const l of [
      'delete element ip elastic_ab12cd spread_tcp_80 { 5 : 198.18.0.2 . 80 }',
      '# new generation 7 by process 100 (nft)', // our session
      'delete rule ip filter ELASTIC-ab12cd-FORWARD handle 3',
      '# new generation 8 by process 200 (iptables-restor)', // our iptables-restore
      'add rule ip nat DOCKER tcp dport 8080 dnat to 198.18.0.9:80',
      '# new generation 9 by process 300 (dockerd)', // not ours to care about
      'delete element ip elastic_ab12cd spread_tcp_80 { 6 : 198.18.0.3 . 80 }',
      '# new generation 10 by process 301 (nft)', // someone else
    ]) feed(l);
    expect(seen).toEqual(['delete element ip elastic_ab12cd spread_tcp_80 { 6 : 198.18.0.3 . 80 } (by pid 301)']);
  });

  it.each([
    [{ monitoring: false, suspected: false, resyncsSinceFull: 0 }, true],
    [{ monitoring: true, suspected: true, resyncsSinceFull: 0 }, true],
    [{ monitoring: true, suspected: false, resyncsSinceFull: 0 }, false],
    [{ monitoring: true, suspected: false, resyncsSinceFull: FULL_READ_EVERY - 2 }, false],
    [{ monitoring: true, suspected: false, resyncsSinceFull: FULL_READ_EVERY - 1 }, true],
  ])('full read due %o -> %s', (o, due) => {
    expect(fullReadDue(o)).toBe(due);
  });
});
