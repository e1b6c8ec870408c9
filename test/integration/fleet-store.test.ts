import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { EtcdCluster } from '../support/etcd.js';
import { answer, converged as convergedOn, fleetConfig, FleetHost, fleetStatus, startBackend, teardownFleet } from '../support/fleet.js';
import { defaultPaths } from '../../src/engine/render.js';
import { EtcdStore } from '../../src/engine/fleet/etcd.js';
import { push, readCurrent } from '../../src/engine/fleet/versions.js';
import type { FleetStore } from '../../src/engine/fleet/store.js';

/**
 * The store going away, for real: etcd members killed under traffic through every host, the
 * store compacted while a host was stopped, the store wiped; and two pushes at once (the
 * compare-and-swap). Hosts must keep serving throughout and catch up when the store returns.
 */
const etcd = new EtcdCluster(23540, 3);
const FLEET = 'fleet-store';
const dir = mkdtempSync(join(tmpdir(), 'fleet-store-cfg-'));
const file = join(dir, 'elastic.yaml');
const BACKEND = { a: 23570, b: 23571, c: 23572 };
const HOSTS = [
  { name: 'lb-1', haproxy: 23551, metrics: 23561 },
  { name: 'lb-2', haproxy: 23552, metrics: 23562 },
];
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'fleetstore'));
const servers: Server[] = [];
const E = () => ['--etcd', etcd.endpoints, '--fleet', FLEET];

const config = (backend: number) => fleetConfig('fleetstore', 23550, backend, HOSTS);
const pushFile = async (text: string) => {
  writeFileSync(file, text);
  const r = await elastic(['cluster', 'push', '-c', file, ...E()]);
  expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
};
const answers = () => Promise.all(HOSTS.map((h) => answer(h.haproxy)));
const metric = async (i: number, name: string): Promise<number | null> => {
  const text = await (await fetch(`http://127.0.0.1:${HOSTS[i]!.metrics}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
};
const converged = (version: number) => convergedOn(etcd.endpoints, FLEET, HOSTS.length, version);
let raced = 0;
const haproxyPid = (h: FleetHost) => readFileSync(defaultPaths('run-fleetstore', 'haproxy', h.env).pidFile, 'utf8').trim();

/** Requests through every host, one after another, for `ms` (bounded: time and count). */
async function traffic(ms: number, want: string): Promise<{ ok: number; failed: string[] }> {
  const end = Date.now() + ms;
  let ok = 0;
  const failed: string[] = [];
  for (let n = 0; Date.now() < end && n < 20_000; n++) {
    for (const a of await answers()) {
      if (a === want) ok++;
      else failed.push(a);
    }
  }
  return { ok, failed };
}

beforeAll(async () => {
  await etcd.start();
  servers.push(await startBackend(BACKEND.a, 'A'), await startBackend(BACKEND.b, 'B'), await startBackend(BACKEND.c, 'C'));
  await pushFile(config(BACKEND.a));
  for (const h of hosts) h.start(etcd.endpoints, FLEET);
  await converged(1);
}, 60_000);

afterAll(() => teardownFleet(hosts, servers, etcd, [dir]));

describe('fleet: the store going away', () => {
  it('two of three members down under traffic: 0 failed requests, hosts stale, then converged again without an HAProxy restart', async () => {
    // Converged in the store can come before a host's first HAProxy start: wait for traffic.
    await waitFor(async () => (await answers()).every((a) => a === 'A'), 'every host serving A', 15_000, 100);
    const pids = hosts.map(haproxyPid);
    await etcd.killMember('m2');
    await etcd.killMember('m3');
    const during = traffic(12_000, 'A');
    // Each host notices (its lease keepalive fails) and says so in its metrics.
    await waitFor(async () => (await metric(0, 'elastic_fleet_store_up')) === 0 && (await metric(1, 'elastic_fleet_store_up')) === 0, 'both hosts report the store down', 12_000, 200);
    const st = await elastic(['cluster', 'status', ...E()]);
    expect(st.exitCode).toBe(3);
    expect(String(st.stderr).trim().split('\n')).toHaveLength(1);
    expect(String(st.stderr)).toMatch(/^error: etcd is unreachable or has no quorum/);
    const t = await during;
    expect(t.failed).toEqual([]);
    expect(t.ok).toBeGreaterThan(20);
    etcd.startMember('m2');
    etcd.startMember('m3');
    await etcd.waitHealthy();
    await waitFor(async () => (await metric(0, 'elastic_fleet_store_up')) === 1 && (await metric(1, 'elastic_fleet_store_up')) === 1, 'both hosts see the store again', 20_000, 200);
    await converged(1);
    await pushFile(config(BACKEND.b));
    await converged(2);
    await waitFor(async () => (await answers()).every((a) => a === 'B'), 'every host on B', 10_000, 100);
    // A backend change goes through the runtime API: the same HAProxy master throughout.
    expect(hosts.map(haproxyPid)).toEqual(pids);
  }, 120_000);

  it('a host stopped past its lease while the store compacts its history catches up on return', async () => {
    const h2 = hosts[1]!;
    h2.child!.kill('SIGSTOP');
    try {
      await waitFor(async () => (await fleetStatus(etcd.endpoints, FLEET)).hosts.find((h) => h.name === 'lb-2')?.alive === false, 'lb-2 no longer alive', 15_000, 250);
      await pushFile(config(BACKEND.c));
      await pushFile(config(BACKEND.a));
      const rev = JSON.parse(String((await etcd.ctl(['endpoint', 'status', '-w', 'json'])).stdout))[0].Status.header.revision as number;
      const c = await etcd.ctl(['compact', String(rev)]);
      expect(c.exitCode, String(c.stderr)).toBe(0);
    } finally {
      h2.child!.kill('SIGCONT');
    }
    await converged(4);
    await waitFor(async () => (await answers()).every((a) => a === 'A'), 'every host on A', 10_000, 100);
  }, 90_000);

  it('two pushes at once: one wins, the other is refused and told to re-read', async () => {
    const store = new EtcdStore({ fleet: FLEET, endpoints: etcd.endpoints.split(','), dialTimeoutMs: 5000 });
    try {
      // The slow pusher read `current` before the fast one committed.
      const stale = await readCurrent(store);
      const slow: FleetStore = Object.assign(Object.create(store) as FleetStore, { get: async (k: string) => (k === 'current' ? stale.kv : store.get(k)) });
      await push(store, { text: config(BACKEND.b), file: 'fast.yaml' });
      await expect(push(slow, { text: config(BACKEND.c), file: 'slow.yaml' })).rejects.toThrow(/another push changed fleet fleet-store since it was read/);
      const h = JSON.parse(String((await elastic(['cluster', 'history', ...E(), '--json'])).stdout)) as { current: number; versions: Array<{ version: number; file: string }> };
      expect(h.current).toBe(5);
      expect(h.versions[0]).toMatchObject({ version: 5, file: 'fast.yaml' });
    } finally {
      await store.close();
    }
    // Many at once from the CLI: every commit is a distinct version, the others are refused.
    const texts = [BACKEND.a, BACKEND.b, BACKEND.c, BACKEND.a].map((b, i) => {
      const f = join(dir, `race-${i}.yaml`);
      writeFileSync(f, `${config(b)}# race ${i}\n`);
      return f;
    });
    const results = await Promise.all(texts.map((f) => elastic(['cluster', 'push', '-c', f, ...E(), '--json'])));
    const committed = results.filter((r) => r.exitCode === 0).map((r) => JSON.parse(String(r.stdout)).version as number);
    for (const r of results.filter((x) => x.exitCode !== 0)) {
      expect(r.exitCode).toBe(6);
      expect(String(r.stdout)).toContain('another push changed fleet');
    }
    expect(committed.length).toBeGreaterThan(0);
    expect(new Set(committed).size).toBe(committed.length);
    const h = JSON.parse(String((await elastic(['cluster', 'history', ...E(), '--json'])).stdout)) as { current: number };
    expect(h.current).toBe(5 + committed.length);
    raced = committed.length;
    await converged(5 + raced);
  }, 60_000);

  it('every member killed and the store wiped: hosts keep serving; status says what is wrong in one line', async () => {
    const before = await answers();
    for (const m of etcd.members) await etcd.killMember(m.name);
    const st = await elastic(['cluster', 'status', ...E()]);
    expect(st.exitCode).toBe(3);
    expect(String(st.stderr).trim().split('\n')).toHaveLength(1);
    const t = await traffic(3000, before[0]!);
    expect(t.failed).toEqual([]);
    // Wiped: new, empty members on the same ports.
    for (const m of etcd.members) rmSync(join(etcd.dir, m.name), { recursive: true, force: true });
    for (const m of etcd.members) etcd.startMember(m.name, 'new');
    await etcd.waitHealthy();
    const s = await elastic(['cluster', 'status', ...E()]);
    expect(s.exitCode).toBe(0);
    expect(s.stdout).toContain('no version in the store (never pushed, or the store was wiped); hosts keep serving what they applied');
    await waitFor(async () => (await metric(0, 'elastic_fleet_store_up')) === 1, 'lb-1 sees the (empty) store', 20_000, 200);
    // Each host registers again in the new store, still on what it applied.
    const after = await waitFor(async () => {
      const x = await fleetStatus(etcd.endpoints, FLEET);
      return x.hosts.length === 2 && x.hosts.every((h) => h.alive) ? x : null;
    }, 'both hosts registered in the wiped store', 20_000, 250);
    expect(after!.hosts.map((h) => [h.alive, h.converged, h.appliedVersion])).toEqual([[true, false, 5 + raced], [true, false, 5 + raced]]);
    expect(await answers()).toEqual(before);
  }, 90_000);
});
