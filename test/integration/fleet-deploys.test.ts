import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';
import { docker, requireDocker, waitFor } from '../support/docker.js';
import { EtcdCluster } from '../support/etcd.js';
import { FleetHost, fleetStatus, leaderOtherThan, teardownFleet } from '../support/fleet.js';
import { changes, convergedOn, deployFleetConfig, linesOf, makeNetwork, removeDeployed, replicas, resumeTimes, ServiceEvents, timeline, type Line } from '../support/fleet-deploys.js';
import { namespaceOfEnv } from '../../src/engine/dataplane/namespace.js';

/**
 * deploys: in a fleet (3-member etcd, three `elastic run --etcd --fleet --host` daemons with their
 * own state and run directories and HAProxy ports, one real Docker): only the leader creates and
 * removes containers; a new leader finishes a rollout the old one left halfway (kill -9); a leader
 * paused past its TTL (SIGSTOP) and resumed changes nothing, in the store or in Docker.
 * Lease TTL 3 s (test/support/fleet.ts).
 */
const TTL_MS = 3000;
const etcd = new EtcdCluster(25600, 3);
const FLEET = 'fleet-deploys';
const SERVICE = `fdpweb${process.pid % 10000}`;
const NET = `fleetdpl${process.pid % 10000}`;
const HOSTS = [
  { name: 'lb-1', haproxy: 25611, metrics: 25621 },
  { name: 'lb-2', haproxy: 25612, metrics: 25622 },
  { name: 'lb-3', haproxy: 25613, metrics: 25623 },
];
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'fleetdpl'));
const dir = mkdtempSync(join(tmpdir(), 'fleet-deploys-cfg-'));
const file = join(dir, 'elastic.yaml');
const events = new ServiceEvents(SERVICE);

async function push(v: number): Promise<void> {
  writeFileSync(file, deployFleetConfig({ name: 'fleetdpl', service: SERVICE, network: NET, port: 25610, hosts: HOSTS, version: v }));
  const r = await elastic(['cluster', 'push', '-c', file, '--etcd', etcd.endpoints, '--fleet', FLEET]);
  expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
  expect(String(r.stderr)).not.toContain('deploys: are not run');
}

const hostByName = (name: string) => hosts[HOSTS.findIndex((h) => h.name === name)]!;
const leader = async (): Promise<string | null> => (await fleetStatus(etcd.endpoints, FLEET)).leader;
const metric = async (name: string, m: string): Promise<number> => {
  const h = HOSTS.find((x) => x.name === name)!;
  const text = await (await fetch(`http://127.0.0.1:${h.metrics}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
  return Number(new RegExp(`^${m.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
};

beforeAll(async () => {
  await requireDocker();
  await removeDeployed(SERVICE);
  await makeNetwork(NET, '198.18.56.0/25');
  await events.start();
  await etcd.start();
  await push(1);
  for (const h of hosts) h.start(etcd.endpoints, FLEET);
}, 90_000);

afterAll(async () => {
  events.stop();
  await teardownFleet(hosts, [], etcd, [dir]);
  await removeDeployed(SERVICE);
  await docker.getNetwork(NET).remove().catch(() => {});
}, 90_000);

describe('fleet deploys: singleton work on the leader', () => {
  it('a version with deploys: converges to 2 replicas, every one created by the leader alone', async () => {
    const lead = (await waitFor(leader, 'a leader', 20_000, 250))!;
    await waitFor(() => convergedOn(SERVICE, hosts, 1), 'two replicas of v1 past their gate', 90_000, 250);
    await new Promise((r) => setTimeout(r, 3000)); // room for a second host to deploy (it must not)
    const all = await replicas(SERVICE);
    expect(all.length).toBe(2);
    expect(events.list.filter((e) => e.action === 'create').length).toBe(2);
    // The label deploy puts on each container: the state directory (= host) that created it.
    const ns = namespaceOfEnv({ ...process.env, ...hostByName(lead).env }).id;
    expect(all.map((r) => r.labels['elastic.state'])).toEqual([ns, ns]);
    for (const h of hosts) expect(changes(h).map((l) => l.id).sort()).toEqual(h.name === lead ? all.map((r) => r.id).sort() : []);
    // Every host serves them (the data path does not go through the leader).
    const ids = new Set(all.map((r) => r.id));
    for (const h of HOSTS) {
      await waitFor(async () => {
        const res = await fetch(`http://127.0.0.1:${h.haproxy}/id`, { signal: AbortSignal.timeout(3000), headers: { connection: 'close' } }).catch(() => null);
        return res !== null && ids.has((await res.text()).trim());
      }, `${h.name} serving a replica`, 15_000, 200);
    }
    const st = await fleetStatus(etcd.endpoints, FLEET);
    expect(st.leader).toBe(lead);
  }, 150_000);

  it('kill -9 of the leader mid-rollout: another host leads and finishes it within TTL + 2 s (health gates and Docker start accounted)', async () => {
    const old = (await leader())!;
    const oh = hostByName(old);
    const from = oh.err!.lines.length;
    const v1Revision = changes(oh)[0]!.revision;
    await push(2);
    // Mid-rollout: the first replica of v2 created and past its gate, the old ones not all gone.
    const first = await oh.err!.json<Line>((l) => l.msg?.endsWith('passed its health gate') && l.revision !== v1Revision, 'the leader gating a v2 replica', 60_000, from);
    const t0 = Date.now();
    await oh.kill('SIGKILL');
    const next = await leaderOtherThan(etcd.endpoints, FLEET, old, 'a new leader', 15_000, 50);
    const nh = hostByName(next);
    const tLead = Date.parse((await nh.err!.json<Line>((l) => l.msg === 'fleet leader: singleton work runs here' && Date.parse(l.time) >= t0, 'the new leader saying so', 5000)).time) - t0;
    await waitFor(() => convergedOn(SERVICE, hosts, 2), 'v2 rolled out by the new leader', 90_000, 50);
    const v1 = (await replicas(SERVICE)).filter((r) => r.v === '1').map((r) => r.id);
    await waitFor(() => v1.every((id) => events.first(id, 'kill', 'destroy')), 'every v1 replica signalled', 30_000, 50);
    // Accounted for (work the rollout has left whoever leads, timed as it happened): the health
    // gate of each replica the new leader gated (>= the deploy's 2 s min-healthy; one after the
    // other here, max_surge 1), and Docker creating and starting each replica it created (Docker's
    // create -> start events; seconds on a loaded machine). See resumeTimes.
    const m = resumeTimes({ service: SERVICE, next: nh, old: oh, oldFrom: from, events, t0, revision: first.revision!, older: v1 });
    console.log(`after the kill (ms):\n${timeline(nh, events, t0)}`);
    console.log(`kill -9 of leader ${old}: ${next} leads after ${tLead} ms, its deploy pass began after ${m.resume} ms, rollout done after ${m.done} ms (${m.gateMs} ms health gates, ${m.dockerMs} ms Docker creating and starting): ${m.besides} ms besides those (TTL ${TTL_MS} ms)`);
    expect(m.resume).toBeLessThanOrEqual(TTL_MS + 2000);
    expect(m.besides).toBeLessThanOrEqual(TTL_MS + 2000);
    // Every container change after the kill was the new leader's.
    const created = events.list.filter((e) => e.t >= t0 && e.action === 'create').map((e) => e.id);
    expect(created.filter((id) => !changes(nh).some((l) => l.id === id))).toEqual([]);
    for (const h of hosts.filter((x) => x !== nh && x !== oh)) expect(changes(h)).toEqual([]);
  }, 180_000);

  it('a leader paused past its TTL mid-rollout and resumed writes nothing and changes no container', async () => {
    const dead = hosts.find((h) => h.child!.exitCode !== null || h.child!.signalCode !== null)!;
    dead.start(etcd.endpoints, FLEET); // back in the fleet (not leading: the leader key is held)
    await waitFor(async () => (await fleetStatus(etcd.endpoints, FLEET)).hosts.filter((h) => h.alive).length === 3, 'three hosts alive', 30_000, 250);
    const old = (await leader())!;
    const oh = hostByName(old);
    const from = oh.err!.lines.length;
    await push(3);
    await oh.err!.json<Line>((l) => / created$/.test(l.msg ?? '') && l.msg.startsWith('replica '), 'the leader creating a v3 replica', 60_000, from);
    const writtenBefore = await metric(old, 'elastic_fleet_fenced_writes_total{result="written"}');
    oh.child!.kill('SIGSTOP');
    const stoppedAt = Date.now();
    let next: string;
    let resumedAt: number;
    let at: number;
    try {
      next = await leaderOtherThan(etcd.endpoints, FLEET, old, 'another leader while the old one is stopped', 20_000, 100);
      // Let the new leader take the rollout over (a container change of its own) while the old one sleeps.
      const nh = hostByName(next);
      await waitFor(() => changes(nh).some((l) => Date.parse(l.time) >= stoppedAt), 'the new leader changing containers', 30_000, 100);
    } finally {
      at = oh.err!.lines.length;
      resumedAt = Date.now();
      oh.child!.kill('SIGCONT');
    }
    const down = await oh.err!.next((l) => l.includes('not the fleet leader: singleton work stopped here'), 'the old leader stepping down', 15_000, at);
    await waitFor(() => convergedOn(SERVICE, hosts, 3), 'v3 rolled out by the new leader', 90_000, 250);
    await new Promise((r) => setTimeout(r, 3000));
    const nh = hostByName(next);
    // Docker: every container created or removed after the resume was the new leader's doing.
    const after = events.list.filter((e) => e.t >= resumedAt && (e.action === 'create' || e.action === 'destroy'));
    const byNew = new Set(changes(nh).map((l) => l.id));
    expect(after.filter((e) => !byNew.has(e.id))).toEqual([]);
    expect(changes(oh, at)).toEqual([]);
    // The store: the old leader's last accepted fenced write is older than the new leadership.
    const key = await etcd.ctl(['get', `/elastic/${FLEET}/leader`, '-w', 'json']);
    const createRev = Number((JSON.parse(String(key.stdout)) as { kvs: Array<{ create_revision: number }> }).kvs[0]!.create_revision);
    const lastOld = await metric(old, 'elastic_fleet_fenced_revision');
    const refused = await metric(old, 'elastic_fleet_fenced_writes_total{result="refused"}');
    const writtenAfter = await metric(old, 'elastic_fleet_fenced_writes_total{result="written"}');
    console.log(`from the SIGSTOP (ms), resumed at ${resumedAt - stoppedAt}:\n${timeline(nh, events, stoppedAt)}\n${timeline(oh, events, stoppedAt)}`);
    console.log(`old leader ${old}: ${down.slice(0, 200)}; fenced writes written ${writtenBefore} -> ${writtenAfter}, refused ${refused}; its last accepted write at revision ${lastOld} < ${createRev} (new leadership); container events after SIGCONT: ${after.length}, all by ${next}`);
    expect(lastOld).toBeGreaterThan(0);
    expect(lastOld).toBeLessThan(createRev);
    expect(await metric(old, 'elastic_fleet_leader')).toBe(0);
    expect(await leader()).toBe(next);
  }, 180_000);
});
