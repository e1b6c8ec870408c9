import { describe, expect, it } from 'vitest';
import type { DrainingReplica } from '../../src/engine/deploy/state.js';
import type { HostDrain } from '../../src/engine/fleet/drains.js';
import { drainingIn, fleetDrainView } from '../../src/engine/fleet/drains.js';
import { Keys, type KeyValue } from '../../src/engine/fleet/store.js';

/** The fleet-wide drain's pure parts: what the deploy states list, and the leader's view of the other hosts. */
const kv = (key: string, value: unknown): KeyValue => ({ key, value: typeof value === 'string' ? value : JSON.stringify(value), modRevision: 1, createRevision: 1 });
const R: DrainingReplica = { id: 'aaaaaaaaaaaa', address: '198.18.70.2', port: 80, timeoutMs: 30_000, since: '2026-11-26T12:00:00Z' };
const d = (state: HostDrain['state']): HostDrain => ({ service: 'web', endpoint: '198.18.70.2:80', state, at: '2026-11-26T12:00:01Z' });
const host = (name: string, drains?: Record<string, HostDrain>) => kv(Keys.host(name), { v: 1, name, ...(drains ? { drains } : {}) });
const alive = (...names: string[]) => names.map((n) => kv(Keys.alive(n), { pid: 1 }));

describe('drainingIn: replicas listed as draining in the deploy states', () => {
  const cases: Array<[string, KeyValue[], string[]]> = [
    ['one listed', [kv('state/deploy-web', { service: 'web', draining: [R] })], ['aaaaaaaaaaaa']],
    ['none listed (no field: an older leader)', [kv('state/deploy-web', { service: 'web' })], []],
    ['a deleted state (null)', [kv('state/deploy-web', 'null')], []],
    ['not JSON', [kv('state/deploy-web', '{')], []],
    ['a bad id, address or port is skipped', [kv('state/deploy-web', { service: 'web', draining: [{ ...R, id: '../x' }, { ...R, id: 'bbbbbbbbbbbb', address: 'host; rm' }, { ...R, id: 'cccccccccccc', port: 70000 }, { ...R, id: 'dddddddddddd' }] })], ['dddddddddddd']],
    ['a bad service name is skipped', [kv('state/deploy-x', { service: 'a b', draining: [R] })], []],
  ];
  it.each(cases)('%s', (_name, kvs, ids) => {
    expect([...drainingIn(kvs).keys()]).toEqual(ids);
  });
});

describe("fleetDrainView: the leader's wait", () => {
  const cases: Array<[string, KeyValue[], KeyValue[], string[], Array<[string, string]>]> = [
    ['every other live host drained', [host('lb-1', {}), host('lb-2', { [R.id]: d('drained') })], alive('lb-1', 'lb-2'), [], [['host.lb-2', 'drained']]],
    ['one still draining, one not reported yet', [host('lb-2', { [R.id]: d('draining') }), host('lb-3', {})], alive('lb-1', 'lb-2', 'lb-3'), ['lb-2', 'lb-3'], [['host.lb-2', 'no answer'], ['host.lb-3', 'no answer']]],
    ['a dead host is not waited for, and said so', [host('lb-2', {})], alive('lb-1'), [], [['host.lb-2', 'no answer']]],
    ['a host on an older elastic (no drains) is not waited for', [host('lb-2')], alive('lb-1', 'lb-2'), [], []],
    ['timeout and failed are final', [host('lb-2', { [R.id]: d('timeout') }), host('lb-3', { [R.id]: d('failed') })], alive('lb-2', 'lb-3'), [], [['host.lb-2', 'timeout'], ['host.lb-3', 'failed']]],
    ['the leader itself is not counted', [host('lb-1', {})], alive('lb-1'), [], []],
  ];
  it.each(cases)('%s', (_name, hosts, live, pending, outcomes) => {
    const v = fleetDrainView('lb-1', R, hosts, live);
    expect(v.pending).toEqual(pending);
    expect(v.outcomes.map((o) => [o.socket, o.outcome])).toEqual(outcomes);
  });
});
