import { describe, expect, it } from 'vitest';
import type { HostStatus } from '../../src/engine/fleet/host-status.js';
import { digestOf, splitHosts, textForHost } from '../../src/engine/fleet/hosts.js';
import { buildStatus } from '../../src/engine/fleet/status.js';
import { Keys, type KeyValue } from '../../src/engine/fleet/store.js';
import type { VersionRecord } from '../../src/engine/fleet/versions.js';
import { FILE } from '../fixtures/fleet/fleet-file.js';

/** `cluster status` from what the store holds: alive = lease key, converged = version + digest + no refusal. */
const TEXT = FILE;
const rec: VersionRecord = { v: 1, version: 7, text: TEXT, hash: digestOf(TEXT), file: 'elastic.yaml', pushedAt: '2026-11-26T12:00:00Z', pushedBy: 'ops@a' };
const ff = splitHosts(TEXT, 'elastic.yaml');
const kv = (key: string, value: unknown): KeyValue => ({ key, value: JSON.stringify(value), modRevision: 1, createRevision: 1 });
const host = (name: string, over: Partial<HostStatus> = {}): KeyValue =>
  kv(Keys.host(name), {
    v: 1,
    name,
    addresses: ['198.18.0.5'],
    elastic: '0.1.0',
    pid: 1,
    appliedVersion: 7,
    digest: digestOf(textForHost(ff, name)),
    appliedAt: null,
    refusal: null,
    lastStale: null,
    services: { web: { backends: [{ address: '198.18.0.10', port: 80, health: 'healthy' }], refused: null } },
    updatedAt: '2026-11-26T12:00:01Z',
    ...over,
  } satisfies HostStatus);
const alive = (...names: string[]) => names.map((n) => kv(Keys.alive(n), { pid: 1 }));

describe('cluster status', () => {
  it('every host alive on the current version with its own digest: converged', () => {
    const s = buildStatus('edge', rec, [host('lb-2'), host('lb-1')], alive('lb-1', 'lb-2'), kv(Keys.leader, { host: 'lb-2' }));
    expect(s).toMatchObject({ fleet: 'edge', version: 7, leader: 'lb-2', converged: true });
    expect(s.hosts.map((h) => [h.name, h.alive, h.converged, h.services.web])).toEqual([
      ['lb-1', true, true, { backends: 1, healthy: 1, refused: null }],
      ['lb-2', true, true, { backends: 1, healthy: 1, refused: null }],
    ]);
    // lb-2 has its own part: its digest differs from lb-1's and is the expected one.
    expect(s.hosts[0]!.digest).not.toBe(s.hosts[1]!.digest);
  });

  it.each([
    ['an older version', host('lb-1', { appliedVersion: 6 }), alive('lb-1')],
    ['another digest under the same number', host('lb-1', { digest: 'ffffffffffff' }), alive('lb-1')],
    ['a service refused by a guardrail', host('lb-1', { services: { web: { backends: [], refused: { reason: 'min_backends' } } } }), alive('lb-1')],
    ['no lease (stale)', host('lb-1'), alive()],
  ])('a host is not converged with %s', (_what, h, a) => {
    const s = buildStatus('edge', rec, [h], a, null);
    expect(s.hosts[0]!.converged).toBe(false);
    expect(s.converged).toBe(false);
    expect(s.leader).toBeNull();
  });

  it('a wiped store: no version, nothing converged, hosts still listed', () => {
    expect(buildStatus('edge', null, [host('lb-1')], alive('lb-1'), null)).toMatchObject({ version: null, converged: false, hosts: [{ name: 'lb-1', converged: false, expectedDigest: null }] });
  });
});
