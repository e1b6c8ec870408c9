import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { EtcdCluster } from '../support/etcd.js';
import { FleetHost, fleetStatus, teardownFleet } from '../support/fleet.js';
import { deployFleetConfig, gates, makeNetwork, removeDeployed, replicas } from '../support/fleet-deploys.js';
import { parseWrk } from '../support/render-backends.js';
import type { HostStatus } from '../../src/engine/fleet/host-status.js';
import { listStatusSockets, requestStatus } from '../../src/engine/runtime/status.js';

/**
 * The fleet-wide drain: a scale-down run by the fleet leader drains each old replica from EVERY
 * live host's load balancers before it stops, not only from the leader's. Real etcd, two
 * `elastic run --etcd --fleet --host` daemons (own state/run dirs, own HAProxy), one real Docker.
 * The replicas exit at once on SIGTERM (as most apps do; the stock test image's busybox httpd as
 * PID 1 ignores it), and the service is HAProxy tcp mode (no L7 retry can hide a cut connection):
 * before the fleet-wide drain, connections through the non-leader's HAProxy to a stopping replica
 * were cut (wrk socket errors). Now: 0 failed requests, and the non-leader's status showed it.
 */
const etcd = new EtcdCluster(26400, 1);
const FLEET = 'fleet-drain';
const SERVICE = `fdrweb${process.pid % 10000}`;
const NET = `fleetdrn${process.pid % 10000}`;
const IMAGE = `elastic-test/web-term:${process.pid}`;
const HOSTS = [
  { name: 'lb-1', haproxy: 26411, metrics: 26421 },
  { name: 'lb-2', haproxy: 26412, metrics: 26422 },
];
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'fleetdrn'));
const dir = mkdtempSync(join(tmpdir(), 'fleet-drain-cfg-'));
const file = join(dir, 'elastic.yaml');

/** A version whose deploy has `replicaCount` replicas; `env` (V=) changes the revision: a rolling update. */
async function push(replicaCount: number, env = 1): Promise<void> {
  writeFileSync(file, deployFleetConfig({ name: 'fleetdrn', service: SERVICE, network: NET, port: 26410, hosts: HOSTS, version: env, replicas: replicaCount, image: IMAGE, mode: 'tcp' }));
  const r = await elastic(['cluster', 'push', '-c', file, '--etcd', etcd.endpoints, '--fleet', FLEET]);
  expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
}

/** The test image, but its PID 1 ends httpd and exits on SIGTERM (in ~0.1 s). */
async function buildImage(): Promise<void> {
  const c = await docker.createContainer({ Image: TEST_IMAGE, Labels: { 'elastic.test': 'fleet-drain' } });
  try {
    await c.commit({ repo: IMAGE.split(':')[0], tag: IMAGE.split(':')[1], changes: ['CMD ["/bin/sh","-c","hostname > /www/id; httpd -f -p 80 -h /www & trap \\"kill $!; exit 0\\" TERM; wait"]'] });
  } finally {
    await c.remove({ force: true });
  }
}

/** Every write of a host's status key, as etcd's watch sees it (`PUT`, the key, the value: one line each). */
function watchStatus(host: string): { seen: HostStatus[]; stop(): void } {
  const seen: HostStatus[] = [];
  const p = spawn('etcdctl', ['--endpoints', etcd.endpoints, 'watch', `/elastic/${FLEET}/hosts/${host}`], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'ignore'] });
  let buf = '';
  p.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith('{')) seen.push(JSON.parse(line) as HostStatus);
    }
  });
  return { seen, stop: () => void p.kill('SIGTERM') };
}

/** Bounded in time (-d 60 s) and count (the script stops after 400k responses), 8 connections; SIGINT ends it early. */
function boundedWrk(port: number) {
  const script = join(dir, 'count.lua');
  writeFileSync(script, 'local n = 0\nresponse = function()\n  n = n + 1\n  if n >= 400000 then wrk.thread:stop() end\nend\n');
  return execa('wrk', ['-t1', '-c8', '-d60s', '--timeout', '5s', '-s', script, `http://127.0.0.1:${port}/id`], { reject: false, timeout: 90_000, stdin: 'ignore' });
}

beforeAll(async () => {
  await requireDocker();
  await removeDeployed(SERVICE);
  await buildImage();
  await makeNetwork(NET, '198.18.70.0/25');
  await etcd.start();
  await push(4);
  for (const h of hosts) h.start(etcd.endpoints, FLEET);
}, 90_000);

afterAll(async () => {
  await teardownFleet(hosts, [], etcd, [dir]);
  await removeDeployed(SERVICE);
  await docker.getNetwork(NET).remove().catch(() => {});
  await docker.getImage(IMAGE).remove({ force: true }).catch(() => {});
}, 90_000);

describe('fleet drain: every live host drains an old replica before the leader stops it', () => {
  it('a scale-down 4 -> 1 under wrk through the NON-leader: 0 failed requests; its status showed each drain', async () => {
    const lead = (await waitFor(async () => (await fleetStatus(etcd.endpoints, FLEET)).leader, 'a leader', 20_000, 250))!;
    const other = HOSTS.find((h) => h.name !== lead)!;
    const leader = hosts.find((h) => h.name === lead)!;
    await waitFor(async () => {
      const running = (await replicas(SERVICE)).filter((r) => r.state === 'running');
      const passed = new Set(gates(leader).map((l) => l.id));
      return running.length === 4 && running.every((r) => passed.has(r.id));
    }, 'four replicas past their gate', 120_000, 250);
    await waitFor(async () => (await fleetStatus(etcd.endpoints, FLEET)).hosts.find((h) => h.name === other.name)?.services[SERVICE]?.backends === 4, `${other.name} serving four replicas`, 30_000, 250);
    const before = (await replicas(SERVICE)).map((r) => r.id);

    const watch = watchStatus(other.name);
    const load = boundedWrk(other.haproxy);
    try {
      await new Promise((r) => setTimeout(r, 2000));
      await push(1);
      await waitFor(async () => (await replicas(SERVICE)).length === 1, 'three replicas stopped and removed', 90_000, 250);
      await new Promise((r) => setTimeout(r, 1500)); // traffic on the one left
    } finally {
      console.log(hosts.find((h) => h.name === other.name)!.err!.lines.filter((l) => l.includes('run.fleet.drain')).join('\n'));
      load.kill('SIGINT');
      watch.stop();
    }
    const w = parseWrk(String((await load).stdout));
    const left = (await replicas(SERVICE)).map((r) => r.id);
    const stopped = before.filter((id) => !left.includes(id));
    const drained = new Set(watch.seen.flatMap((s) => Object.entries(s.drains ?? {}).filter(([, d]) => d.state === 'drained').map(([id]) => id)));
    console.log(`leader ${lead}; through ${other.name}: ${w.requests} requests, ${w.non2xx} non-2xx, ${w.socketErrors} socket errors; ${other.name} reported drained: ${[...drained].join(' ') || 'none'} (${watch.seen.length} status writes seen) of stopped ${stopped.join(' ')}\n${w.raw}`);
    expect(w.requests).toBeGreaterThan(200);
    expect(w.non2xx).toBe(0);
    expect(w.socketErrors).toBe(0);
    expect(stopped.length).toBe(3);
    expect([...drained].sort()).toEqual([...stopped].sort());
  }, 240_000);

  it('a host cut off (SIGSTOP) does not hold a scale-down past its lease: the leader logs which host did not drain, and its deploy status shows it', async () => {
    const lead = (await fleetStatus(etcd.endpoints, FLEET)).leader!;
    const leader = hosts.find((h) => h.name === lead)!;
    const other = hosts.find((h) => h.name !== lead)!;
    await push(2);
    await waitFor(async () => (await replicas(SERVICE)).filter((r) => r.state === 'running').length === 2 && (await fleetStatus(etcd.endpoints, FLEET)).hosts.every((h) => h.alive && h.services[SERVICE]?.backends === 2), 'two replicas, served by both hosts', 90_000, 250);
    const from = leader.err!.lines.length;
    other.child!.kill('SIGSTOP');
    const t0 = Date.now();
    let ms: number;
    try {
      await push(1);
      await waitFor(async () => (await replicas(SERVICE)).length === 1, 'one replica left', 60_000, 100);
      ms = Date.now() - t0;
    } finally {
      other.child!.kill('SIGCONT');
    }
    const warn = await leader.err!.next((l) => l.includes('stops without every load balancer drained'), 'the leader saying which host did not drain', 5000, from);
    console.log(`${other.name} stopped: the replica was removed ${ms} ms after the push (drain timeout 30000 ms, lease TTL 3000 ms); ${warn.slice(0, 300)}`);
    expect(warn).toContain(`host.${other.name}: no answer (host not alive`);
    // The leader's deploy status (its status socket, as `top` reads it): the last drain, per host.
    const sock = (await listStatusSockets(leader.runDir)).find((x) => x.kind === 'run')!;
    const snap = await requestStatus<{ services: Record<string, { deploy?: { lastDrain?: { outcomes: Array<{ socket: string; outcome: string }> } } }> }>(sock.path);
    expect(snap.services[SERVICE]?.deploy?.lastDrain?.outcomes).toContainEqual(expect.objectContaining({ socket: `host.${other.name}`, outcome: 'no answer' }));
    // Not held for the drain timeout: the lease (3 s) ends the wait.
    expect(ms).toBeLessThan(20_000);
  }, 180_000);

  it('a rolling update (new revision, 1 -> 2 replicas) under wrk through the NON-leader: 0 failed requests', async () => {
    await waitFor(async () => (await fleetStatus(etcd.endpoints, FLEET)).hosts.every((h) => h.alive && h.services[SERVICE]?.backends === 1), 'both hosts back and serving the one replica', 60_000, 250);
    const lead = (await fleetStatus(etcd.endpoints, FLEET)).leader!;
    const other = HOSTS.find((h) => h.name !== lead)!;
    const old = (await replicas(SERVICE)).map((r) => r.id);
    const load = boundedWrk(other.haproxy);
    try {
      await new Promise((r) => setTimeout(r, 1500));
      await push(2, 2);
      await waitFor(async () => {
        const all = await replicas(SERVICE);
        return all.length === 2 && all.every((r) => r.v === '2' && r.state === 'running') && !all.some((r) => old.includes(r.id));
      }, 'two replicas of V=2, the old one removed', 120_000, 250);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      load.kill('SIGINT');
    }
    const w = parseWrk(String((await load).stdout));
    console.log(`rolling update, leader ${lead}; through ${other.name}: ${w.requests} requests, ${w.non2xx} non-2xx, ${w.socketErrors} socket errors\n${w.raw}`);
    expect(w.requests).toBeGreaterThan(200);
    expect(w.non2xx).toBe(0);
    expect(w.socketErrors).toBe(0);
  }, 240_000);
});
