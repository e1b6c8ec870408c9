import { mkdtempSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { EtcdCluster } from '../support/etcd.js';
import { answer, converged, fleetConfig, FleetHost, startBackend, teardownFleet } from '../support/fleet.js';

/**
 * A fleet as operators watch it (issue 15), with real parts: a 1-member etcd, three `elastic run
 * --host` daemons (the built binary, each with its own state/run dir and HAProxy), real HAProxy.
 * - push -> each host puts a version that only changes backends in force in place (no pipeline
 *   rebuild) and logs where the time went; a version that changes a service rebuilds;
 * - every host exports the fleet metrics the issue lists, with the same values;
 * - `top` shows the fleet's hosts: from the store (--etcd --fleet) and from a fleet daemon's
 *   status socket (no flags).
 * Ports 25560-25579.
 */
const etcd = new EtcdCluster(25560, 1);
const FLEET = 'fleet-top';
const dir = mkdtempSync(join(tmpdir(), 'fleet-top-cfg-'));
const file = join(dir, 'elastic.yaml');
const BACKEND = { a: 25562, b: 25563 };
const HOSTS = [
  { name: 'lb-1', haproxy: 25571, metrics: 25574 },
  { name: 'lb-2', haproxy: 25572, metrics: 25575 },
  { name: 'lb-3', haproxy: 25573, metrics: 25576 },
];
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'fleettop'));
const servers: Server[] = [];
const E = () => ['--etcd', etcd.endpoints, '--fleet', FLEET];
const config = (backend: number, maxChange = 100) => fleetConfig('fleettop', 25570, backend, HOSTS).replace('max_change: 100', `max_change: ${maxChange}`);

const push = async (text: string) => {
  writeFileSync(file, text);
  const r = await elastic(['cluster', 'push', '-c', file, ...E()]);
  expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
};
const metrics = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
};
/** A host's JSON log lines with this message, parsed. */
const logged = (h: FleetHost, msg: string) =>
  h.err!.lines.flatMap((l) => {
    try {
      const o = JSON.parse(l) as Record<string, unknown>;
      return o.msg === msg ? [o] : [];
    } catch {
      return [];
    }
  });

beforeAll(async () => {
  await etcd.start();
  servers.push(await startBackend(BACKEND.a, 'A'), await startBackend(BACKEND.b, 'B'));
  await push(config(BACKEND.a));
  for (const h of hosts) h.start(etcd.endpoints, FLEET);
  await converged(etcd.endpoints, FLEET, 3, 1, 40_000);
}, 90_000);

afterAll(() => teardownFleet(hosts, servers, etcd, [dir]));

describe('fleet: push in place, metrics on every host, top shows the hosts', () => {
  it('a version that only changes backends is put in force in place on every host, with its stages logged', async () => {
    await push(config(BACKEND.b));
    await converged(etcd.endpoints, FLEET, 3, 2);
    await waitFor(async () => (await Promise.all(HOSTS.map((h) => answer(h.haproxy)))).every((a) => a === 'B'), 'every host serving B', 15_000, 100);
    for (const h of hosts) {
      const reloads = logged(h, 'config reloaded');
      expect(reloads.at(-1), h.name).toMatchObject({ inPlace: true });
      const applied = logged(h, 'fleet version applied').find((o) => o.version === 2)!;
      expect(applied, h.name).toBeDefined();
      // Where push -> applied went: each stage in ms from the push, in order.
      const stages = ['currentMs', 'readMs', 'reloadedMs'].map((k) => applied[k] as number);
      expect(stages.every((n) => Number.isInteger(n) && n >= 0), JSON.stringify(applied)).toBe(true);
      expect([...stages].sort((x, y) => x - y)).toEqual(stages);
    }
    // A service setting (a guardrail) changed: not in place, the pipeline is rebuilt.
    await push(config(BACKEND.b, 90));
    await converged(etcd.endpoints, FLEET, 3, 3);
    for (const h of hosts) await waitFor(async () => logged(h, 'config reloaded').at(-1)?.inPlace === false, `${h.name} rebuilt for version 3`, 10_000, 100);
    expect((await Promise.all(HOSTS.map((h) => answer(h.haproxy)))).every((a) => a === 'B')).toBe(true);
  }, 90_000);

  it('every host exports the fleet metrics: versions current and applied, converged, store up, one leader, push -> applied histogram', async () => {
    const texts = await Promise.all(HOSTS.map((h) => metrics(h.metrics)));
    let leaders = 0;
    texts.forEach((t, i) => {
      const at = HOSTS[i]!.name;
      expect(value(t, 'elastic_fleet_version{kind="current"}'), at).toBe(3);
      expect(value(t, 'elastic_fleet_version{kind="applied"}'), at).toBe(3);
      expect(value(t, 'elastic_fleet_converged'), at).toBe(1);
      expect(value(t, 'elastic_fleet_store_up'), at).toBe(1);
      const leader = value(t, 'elastic_fleet_leader');
      expect([0, 1], at).toContain(leader);
      leaders += leader!;
      // Two pushes applied since the start (versions 2 and 3), each observed once.
      expect(value(t, 'elastic_fleet_apply_seconds_count'), at).toBe(2);
      expect(value(t, 'elastic_fleet_apply_seconds_bucket{le="+Inf"}'), at).toBe(2);
      expect(value(t, 'elastic_fleet_apply_seconds_sum'), at).toBeGreaterThan(0);
    });
    expect(leaders).toBe(1);
  }, 30_000);

  it('top --etcd --fleet: the Hosts view (JSON and plain) from the store', async () => {
    const r = await elastic(['top', '--json', '--interval', '0.2', '--no-docker', ...E()], { env: hosts[0]!.env });
    expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
    const j = JSON.parse(String(r.stdout));
    expect(j.fleet).toMatchObject({ fleet: FLEET, version: 3, converged: true, from: 'etcd', error: null });
    expect(j.fleet.hosts.map((h: { name: string }) => h.name)).toEqual(['lb-1', 'lb-2', 'lb-3']);
    for (const h of j.fleet.hosts) expect(h).toMatchObject({ alive: true, appliedVersion: 3, converged: true, refusal: null, services: [{ service: 'web', backends: 1, healthy: 1 }] });
    expect(j.fleet.hosts.filter((h: { leader: boolean }) => h.leader).map((h: { name: string }) => h.name)).toEqual([j.fleet.leader]);

    const plain = await elastic(['top', '--once', '--interval', '0.2', '--no-docker', ...E()], { env: hosts[0]!.env });
    expect(plain.exitCode, `${plain.stdout}${plain.stderr}`).toBe(0);
    expect(String(plain.stdout)).toContain(`fleet ${FLEET}  version 3  leader ${j.fleet.leader}  converged  (from etcd)`);
    for (const h of HOSTS) expect(String(plain.stdout)).toMatch(new RegExp(`^${h.name}\\s+alive\\s+v3\\s+yes\\s+(leader\\s+)?web 1/1`, 'm'));
  }, 30_000);

  it('top next to a fleet host (no flags): the fleet from the daemon\'s status socket', async () => {
    const r = await elastic(['top', '--json', '--interval', '0.2', '--no-docker'], { env: hosts[1]!.env });
    expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
    const j = JSON.parse(String(r.stdout));
    expect(j.sources.map((s: { id: string }) => s.id)).toEqual(['run.fleettop']);
    expect(j.fleet).toMatchObject({ fleet: FLEET, version: 3, converged: true, from: 'run.fleettop' });
    expect(j.fleet.hosts.map((h: { name: string; alive: boolean }) => `${h.name}:${h.alive}`)).toEqual(['lb-1:true', 'lb-2:true', 'lb-3:true']);
  }, 30_000);

  it('the store gone: top next to a fleet host still sees the daemon, and the hosts it last read with the store\'s error', async () => {
    await etcd.killMember('m1');
    // A daemon answers from a fleet status read at most 1 s old: let the last good one age out
    // (on a quiet machine the previous test's read was less than 1 s ago).
    await new Promise((r) => setTimeout(r, 1200));
    const top = async (h: FleetHost) => {
      const r = await elastic(['top', '--json', '--interval', '0.2', '--no-docker'], { env: h.env });
      expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
      const j = JSON.parse(String(r.stdout));
      expect(j.sources.map((s: { id: string; status: string }) => `${s.id}:${s.status}`)).toEqual(['run.fleettop:live']);
      expect(j.fleet).toMatchObject({ fleet: FLEET, error: expect.any(String) });
      return j.fleet.hosts.map((x: { name: string }) => x.name);
    };
    // lb-2 was asked before (the test above): its last read; lb-3 never was: the error alone.
    expect(await top(hosts[1]!)).toEqual(['lb-1', 'lb-2', 'lb-3']);
    expect(await top(hosts[2]!)).toEqual([]);
    // HAProxy keeps serving meanwhile.
    expect(await answer(HOSTS[2]!.haproxy)).toBe('B');
  }, 30_000);
});
