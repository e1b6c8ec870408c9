/**
 * Fleet benchmark (issue 15): leader killed -> singleton work resumed on another host. 3 hosts on
 * one machine (`elastic run --etcd --fleet --host`, lease TTL 3 s), a real 3-member etcd, real
 * HAProxy and Docker, a deploy of 2 replicas. Each round pushes a new version (a rolling update),
 * kills the leader with SIGKILL once the first new replica passed its gate, and times from the
 * kill: the new leader's deploy pass beginning (`reconciling ...` in its log: singleton work
 * resumed) and the rollout done (both new replicas past their gate, every old one signalled to
 * stop), with the health gates and Docker's create -> start of the replicas it created shown
 * apart. The killed host is started again before the next round.
 * Usage: npx tsx bench/fleet/leader-resume.ts [rounds=5]
 */
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { elastic } from '../../test/support/cli.js';
import { docker, requireDocker, waitFor } from '../../test/support/docker.js';
import { EtcdCluster } from '../../test/support/etcd.js';
import { FleetHost, fleetStatus, leaderOtherThan } from '../../test/support/fleet.js';
import { changes, convergedOn, deployFleetConfig, gates, makeNetwork, removeDeployed, replicas, resumeTimes, ServiceEvents } from '../../test/support/fleet-deploys.js';
import { percentile } from '../stats.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const FLEET = 'bench-resume';
const SERVICE = `fdpbench${process.pid % 10000}`;
const NET = `fleetdplb${process.pid % 10000}`;
const HOSTS = [0, 1, 2].map((i) => ({ name: `lb-${i + 1}`, haproxy: 25661 + i, metrics: 25671 + i }));
const etcd = new EtcdCluster(25650, 3);
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'fleetdplbench'));
const events = new ServiceEvents(SERVICE);
const dir = mkdtempSync(join(tmpdir(), 'fleet-resume-bench-'));
const file = join(dir, 'elastic.yaml');

async function push(v: number): Promise<void> {
  writeFileSync(file, deployFleetConfig({ name: 'fleetdplbench', service: SERVICE, network: NET, port: 25660, hosts: HOSTS, version: v }));
  const r = await elastic(['cluster', 'push', '-c', file, '--etcd', etcd.endpoints, '--fleet', FLEET]);
  if (r.exitCode !== 0) throw new Error(`push: ${r.stderr}`);
}
const leader = async () => (await fleetStatus(etcd.endpoints, FLEET)).leader;
const byName = (name: string) => hosts[HOSTS.findIndex((h) => h.name === name)]!;

await requireDocker();
await removeDeployed(SERVICE);
await makeNetwork(NET, '198.18.56.128/25');
await events.start();
try {
  await etcd.start();
  await push(1);
  for (const h of hosts) h.start(etcd.endpoints, FLEET);
  await waitFor(() => convergedOn(SERVICE, hosts, 1), 'the first version deployed', 120_000, 250);
  const rows: Array<ReturnType<typeof resumeTimes>> = [];
  for (let v = 2; v < 2 + ROUNDS; v++) {
    const old = (await waitFor(leader, 'a leader', 20_000, 250))!;
    const oh = byName(old);
    const from = oh.err!.lines.length;
    const before = new Set((await replicas(SERVICE)).map((r) => r.id));
    await push(v);
    const first = await oh.err!.json<{ msg: string; revision?: string; id?: string }>((l) => l.msg?.endsWith('passed its health gate') && !before.has(l.id ?? ''), `round ${v}: the leader gating a new replica`, 60_000, from);
    const t0 = Date.now();
    await oh.kill('SIGKILL');
    const next = await leaderOtherThan(etcd.endpoints, FLEET, old, 'a new leader', 20_000, 50);
    const nh = byName(next);
    await waitFor(() => convergedOn(SERVICE, hosts, v), `round ${v}: rolled out by the new leader`, 120_000, 50);
    const older = (await replicas(SERVICE)).filter((r) => r.v !== String(v)).map((r) => r.id);
    await waitFor(() => older.every((id) => events.first(id, 'kill', 'destroy')), 'every old replica signalled', 30_000, 50);
    const m = resumeTimes({ service: SERVICE, next: nh, old: oh, oldFrom: from, events, t0, revision: first.revision!, older });
    rows.push(m);
    console.log(`round ${v - 1}: ${old} killed, ${next} resumed after ${m.resume} ms; rollout done after ${m.done} ms (${m.gateMs} ms gates, ${m.dockerMs} ms Docker create+start, ${m.besides} ms besides); container changes by other hosts: ${hosts.filter((h) => h !== nh && h !== oh).flatMap((h) => changes(h).filter((l) => Date.parse(l.time) >= t0)).length}, gates passed by ${next}: ${gates(nh).filter((l) => Date.parse(l.time) >= t0).length}`);
    oh.start(etcd.endpoints, FLEET);
    await waitFor(async () => (await fleetStatus(etcd.endpoints, FLEET)).hosts.filter((h) => h.alive).length === 3, 'three hosts alive', 30_000, 250);
  }
  const f = (xs: number[]) => `p50 ${percentile(xs, 50)} ms, max ${Math.max(...xs)} ms`;
  console.log(`leader killed -> deploy pass resumed on another host (TTL 3 s, n=${rows.length}): ${f(rows.map((r) => r.resume))}`);
  console.log(`leader killed -> rollout done, besides gates and Docker create+start (n=${rows.length}): ${f(rows.map((r) => r.besides))}`);
  console.log(`load average: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
} finally {
  events.stop();
  for (const h of hosts) {
    if (h.child?.pid) h.child.kill('SIGCONT');
    await h.cleanup();
  }
  await etcd.stop();
  await removeDeployed(SERVICE);
  await docker.getNetwork(NET).remove().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
