import { mkdtempSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { EtcdCluster } from '../support/etcd.js';
import { answer, fleetConfig, FleetHost, fleetStatus, startBackend, teardownFleet } from '../support/fleet.js';
import { EtcdStore } from '../../src/engine/fleet/etcd.js';
import { Leadership } from '../../src/engine/fleet/election.js';
import { Keys } from '../../src/engine/fleet/store.js';
import { nullLogger } from '../../src/engine/runtime/logger.js';

/**
 * One leader per fleet (lease TTL 3 s here): kill -9 of the leader moves leadership within
 * TTL + 2 s; a leader paused past its TTL (SIGSTOP) and resumed writes nothing: its fenced
 * writes are refused. Traffic never depends on the leader.
 */
const etcd = new EtcdCluster(23600, 3);
const FLEET = 'fleet-leader';
const dir = mkdtempSync(join(tmpdir(), 'fleet-leader-cfg-'));
const file = join(dir, 'elastic.yaml');
const HOSTS = [
  { name: 'lb-1', haproxy: 23611, metrics: 23621 },
  { name: 'lb-2', haproxy: 23612, metrics: 23622 },
  { name: 'lb-3', haproxy: 23613, metrics: 23623 },
];
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'fleetleader'));
let backend: Server;
const config = fleetConfig('fleetleader', 23610, 23630, HOSTS);
const metric = async (name: string, m: string): Promise<number> => {
  const h = HOSTS.find((x) => x.name === name)!;
  const text = await (await fetch(`http://127.0.0.1:${h.metrics}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  return Number(new RegExp(`^${m.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
};
const leader = async (): Promise<string | null> => (await fleetStatus(etcd.endpoints, FLEET)).leader;
const hostOf = (name: string) => hosts[HOSTS.findIndex((h) => h.name === name)]!;

beforeAll(async () => {
  await etcd.start();
  backend = await startBackend(23630, 'L');
  writeFileSync(file, config);
  const r = await elastic(['cluster', 'push', '-c', file, '--etcd', etcd.endpoints, '--fleet', FLEET]);
  expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
  for (const h of hosts) h.start(etcd.endpoints, FLEET);
}, 60_000);

afterAll(() => teardownFleet(hosts, [backend], etcd, [dir]));

describe('fleet leader', () => {
  it('exactly one host leads; every host serves', async () => {
    const first = (await waitFor(leader, 'a leader', 20_000, 250))!;
    await waitFor(async () => (await Promise.all(HOSTS.map((h) => answer(h.haproxy)))).every((a) => a === 'L'), 'every host serving', 15_000, 200);
    const flags = await Promise.all(HOSTS.map((h) => metric(h.name, 'elastic_fleet_leader')));
    expect(flags.reduce((a, b) => a + b, 0)).toBe(1);
    expect(flags[HOSTS.findIndex((h) => h.name === first)]).toBe(1);
    await waitFor(async () => (await metric(first, 'elastic_fleet_fenced_writes_total{result="written"}')) > 0, 'the leader writing its fenced heartbeat', 15_000, 200);
  }, 60_000);

  it('kill -9 of the leader: another host leads within TTL + 2 s; traffic through the others unaffected', async () => {
    const old = (await leader())!;
    const t0 = Date.now();
    await hostOf(old).kill('SIGKILL');
    const next = (await waitFor(async () => {
      const l = await leader();
      return l && l !== old ? l : null;
    }, 'a new leader', 10_000, 100))!;
    const took = Date.now() - t0;
    expect(took).toBeLessThanOrEqual(3000 + 2000);
    await waitFor(async () => (await metric(next, 'elastic_fleet_leader')) === 1, 'the new leader says so', 10_000, 100); // the move itself is timed above
    for (const h of HOSTS.filter((x) => x.name !== old)) expect(await answer(h.haproxy)).toBe('L');
    console.log(`leader moved in ${took} ms (TTL 3 s)`);
  }, 60_000);

  it('a leader paused past its TTL and resumed writes nothing: it steps down, and a fenced write it tries is refused', async () => {
    const old = (await leader())!;
    const h = hostOf(old);
    const written = await metric(old, 'elastic_fleet_fenced_writes_total{result="written"}');
    h.child!.kill('SIGSTOP');
    let next: string;
    try {
      next = (await waitFor(async () => {
        const l = await leader();
        return l && l !== old ? l : null;
      }, 'another leader while the old one is stopped', 15_000, 200))!;
    } finally {
      h.child!.kill('SIGCONT');
    }
    const down = await h.err!.next((l) => l.includes('not the fleet leader: singleton work stopped here'), 'the old leader stepping down', 10_000);
    console.log(`old leader: ${down}`);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await metric(old, 'elastic_fleet_fenced_writes_total{result="written"}')).toBe(written);
    expect(await metric(old, 'elastic_fleet_leader')).toBe(0);
    expect(await leader()).toBe(next);
    const beat = await etcd.ctl(['get', `/elastic/${FLEET}/${Keys.heartbeat}`, '--print-value-only']);
    expect(JSON.parse(String(beat.stdout)).host).toBe(next);
  }, 60_000);

  it('a write with a stale fencing token is refused by the store (the mechanism, directly)', async () => {
    const store = new EtcdStore({ fleet: 'fleet-fence', endpoints: etcd.endpoints.split(','), dialTimeoutMs: 5000 });
    try {
      const a = new Leadership(store, 'a', nullLogger, () => {});
      const b = new Leadership(store, 'b', nullLogger, () => {});
      const la = await store.lease(2);
      await a.campaign(la, true);
      expect(a.leading).toBe(true);
      expect(await a.fencedPut([{ key: 'singleton/x', value: 'a1' }])).toBe(true);
      // a's lease expires (as when paused), b is elected; a still believes it leads.
      await la.revoke();
      const lb = await store.lease(5);
      await b.campaign(lb, true);
      expect(b.leading).toBe(true);
      expect(a.leading).toBe(true);
      expect(await a.fencedPut([{ key: 'singleton/x', value: 'a2' }])).toBe(false);
      expect(a.leading).toBe(false);
      expect((await store.get('singleton/x'))!.value).toBe('a1');
      expect(await b.fencedPut([{ key: 'singleton/x', value: 'b1' }])).toBe(true);
      await lb.revoke();
    } finally {
      await store.close();
    }
  }, 30_000);
});
