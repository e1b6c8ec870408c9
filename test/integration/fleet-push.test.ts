import { mkdtempSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { BIN, elastic } from '../support/cli.js';
import { LineReader } from '../support/lines.js';
import { waitFor } from '../support/docker.js';
import { EtcdCluster } from '../support/etcd.js';
import { answer, converged as convergedOn, fleetConfig, FleetHost, fleetStatus, startBackend, teardownFleet } from '../support/fleet.js';

/**
 * A fleet end to end: a real 3-member etcd, three `elastic run --host` daemons (the built binary,
 * each with its own state/run dir and HAProxy port, from the `hosts:` section), real HAProxy.
 * push -> every host serves the new version; an invalid file never reaches a host; a version one
 * host's guardrail refuses shows in status while that host keeps serving; history -> rollback.
 */
const etcd = new EtcdCluster(23500, 3);
const FLEET = 'fleet-it';
const dir = mkdtempSync(join(tmpdir(), 'fleet-cfg-'));
const file = join(dir, 'elastic.yaml');
const BACKEND = { a: 23510, b: 23511, c: 23512 };
const HOSTS = [
  { name: 'lb-1', haproxy: 23521, metrics: 23531 },
  { name: 'lb-2', haproxy: 23522, metrics: 23532 },
  { name: 'lb-3', haproxy: 23523, metrics: 23533 },
];
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'fleetit'));
const servers: Server[] = [];
const E = () => ['--etcd', etcd.endpoints, '--fleet', FLEET];

/** One fleet file: a backend, and each host's own HAProxy and metrics ports (hosts:). */
const config = (backend: number, extraHost3 = '') => fleetConfig('fleetit', 23520, backend, HOSTS, { 'lb-3': extraHost3 });

const push = async (text: string, extra: string[] = []) => {
  writeFileSync(file, text);
  return elastic(['cluster', 'push', '-c', file, ...E(), ...extra]);
};
const answers = () => Promise.all(HOSTS.map((h) => answer(h.haproxy)));
const converged = (version: number) => convergedOn(etcd.endpoints, FLEET, 3, version);

beforeAll(async () => {
  await etcd.start();
  servers.push(await startBackend(BACKEND.a, 'A'), await startBackend(BACKEND.b, 'B'), await startBackend(BACKEND.c, 'C'));
  const r = await push(config(BACKEND.a));
  expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
  for (const h of hosts) h.start(etcd.endpoints, FLEET);
}, 60_000);

afterAll(() => teardownFleet(hosts, servers, etcd, [dir]));

describe('a fleet of three hosts on one etcd', () => {
  const failed = () => hosts.map((h) => `--- ${h.name}\n${h.err?.lines.slice(-15).join('\n')}`).join('\n');

  it('starts every host on the current version and serves it', async () => {
    const s = await converged(1).catch((err) => Promise.reject(new Error(`${err.message}\n${failed()}`)));
    expect(s.hosts.map((h) => h.name)).toEqual(['lb-1', 'lb-2', 'lb-3']);
    for (const h of s.hosts) expect(h.digest).toBe(h.expectedDigest);
    await waitFor(async () => (await answers()).every((a) => a === 'A'), 'every host serving backend A', 10_000, 100);
  }, 60_000);

  it('push: every host applies the new version and traffic through each reaches the new backend', async () => {
    const r = await push(config(BACKEND.b));
    expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('version 2 committed (was 1)');
    expect(r.stdout).toContain(`~ sources.web.static.backends: ["127.0.0.1:${BACKEND.a}"] -> ["127.0.0.1:${BACKEND.b}"]`);
    await converged(2);
    await waitFor(async () => (await answers()).every((a) => a === 'B'), 'every host serving backend B', 10_000, 100);
    const metrics = await (await fetch(`http://127.0.0.1:${HOSTS[0]!.metrics}/metrics`)).text();
    expect(metrics).toMatch(/elastic_fleet_version\{kind="applied"\} 2/);
    expect(metrics).toMatch(/elastic_fleet_converged 1/);
    expect(metrics).toMatch(/elastic_fleet_store_up 1/);
    expect(metrics).toMatch(/elastic_fleet_apply_seconds_count 1/);
  }, 60_000);

  it('an invalid file is refused with run --check\'s message and never reaches a host', async () => {
    const bad = config(BACKEND.c).replace('port: 23520', 'port: 70000');
    const r = await push(bad);
    expect(r.exitCode).toBe(5);
    writeFileSync(join(dir, 'base.yaml'), bad.slice(0, bad.indexOf('hosts:')));
    const check = await elastic(['run', '--check', '-c', join(dir, 'base.yaml')]);
    const line = (s: string) => s.split('\n').find((l) => l.startsWith('error:'))!.replace(/base\.yaml|elastic\.yaml/, 'F');
    expect(line(String(r.stderr))).toBe(line(String(check.stderr)));
    expect(String(r.stderr)).toContain('elastic.yaml:10: services[0].haproxy.port: must be 1-65535');
    const s = await fleetStatus(etcd.endpoints, FLEET);
    expect(s.version).toBe(2);
    expect((await elastic(['cluster', 'history', ...E(), '--json'])).stdout).not.toContain('"version":3');
    expect(await answers()).toEqual(['B', 'B', 'B']);
  }, 60_000);

  it('a version one host refuses (its guardrail) shows in status; that host keeps serving the previous backends', async () => {
    // lb-3 wants 2 backends of a version that has one: its guardrail refuses, lb-1/lb-2 apply.
    const r = await push(config(BACKEND.c, ', guardrails: { min_backends: 2 }'));
    expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
    const s = (await waitFor(
      async () => {
        const st = await fleetStatus(etcd.endpoints, FLEET);
        const by = Object.fromEntries(st.hosts.map((h) => [h.name, h]));
        return st.version === 3 && by['lb-1']!.converged && by['lb-2']!.converged && by['lb-3']!.appliedVersion === 3 && by['lb-3']!.services.web?.refused ? st : null;
      },
      'lb-1/lb-2 converged, lb-3 refused',
      20_000,
      250,
    ))!;
    expect(s.converged).toBe(false);
    expect(s.hosts.find((h) => h.name === 'lb-3')!.converged).toBe(false);
    await waitFor(async () => (await answers()).join() === 'C,C,B', 'lb-1/lb-2 on C, lb-3 still on B', 10_000, 100);
    const text = await elastic(['cluster', 'status', ...E()]);
    expect(text.stdout).toContain('NOT converged');
    expect(text.stdout).toMatch(/lb-3\s+alive\s+3\s+no/);
  }, 60_000);

  it('history -> rollback: a new version with the old text, every host back on the old content', async () => {
    const h = JSON.parse(String((await elastic(['cluster', 'history', ...E(), '--json'])).stdout)) as { current: number; versions: Array<{ version: number }> };
    expect(h.current).toBe(3);
    expect(h.versions.map((v) => v.version)).toEqual([3, 2, 1]);
    const r = await elastic(['cluster', 'rollback', '2', ...E(), '--json']);
    expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
    expect(JSON.parse(String(r.stdout))).toMatchObject({ version: 4, previous: 3, committed: true });
    await converged(4);
    await waitFor(async () => (await answers()).every((a) => a === 'B'), 'every host back on backend B', 10_000, 100);
    const d = await elastic(['cluster', 'diff', '2', '4', ...E(), '--json']);
    expect(JSON.parse(String(d.stdout)).changes).toEqual([]);
    const hist = await elastic(['cluster', 'history', ...E()]);
    expect(hist.stdout).toMatch(/4\*\s+\S+\s+\S+\s+\S+\s+elastic\.yaml\s+rollback to 2/);
  }, 60_000);

  it('status --watch prints a line when the fleet changes and ends on SIGINT', async () => {
    const child = spawn(process.execPath, [BIN, 'cluster', 'status', '--watch', '--json', '--interval', '1', ...E()], { env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const out = new LineReader(child.stdout!);
      await out.json<{ version: number }>((o) => o.version === 4, 'the current status', 15_000);
      const r = await push(config(BACKEND.c));
      expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
      await out.json<{ version: number; converged: boolean }>((o) => o.version === 5 && o.converged, 'version 5 converged', 20_000);
      const code = new Promise((res) => child.once('exit', (c) => res(c)));
      child.kill('SIGINT');
      expect(await code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);

  it('a second daemon under a host name already running is refused before it starts anything', async () => {
    const dup = new FleetHost('lb-1', 'fleetit');
    try {
      dup.start(etcd.endpoints, FLEET);
      const code = await new Promise((res) => dup.child!.once('exit', (c) => res(c)));
      expect(code).toBe(6);
      expect(dup.err!.lines.join('\n')).toContain('another daemon is registered as host lb-1 in fleet fleet-it');
      expect(await answers()).toEqual(['C', 'C', 'C']);
    } finally {
      await dup.cleanup();
    }
  }, 60_000);

  it('a version no host can apply (a new name needs a restart) is a refusal in status; every host keeps serving the last', async () => {
    const r = await push(config(BACKEND.a).replace('name: fleetit', 'name: renamed'));
    expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
    const s = (await waitFor(async () => {
      const st = await fleetStatus(etcd.endpoints, FLEET);
      return st.version === 6 && st.hosts.every((h) => h.refusal?.version === 6) ? st : null;
    }, 'every host refusing version 6', 20_000, 250))!;
    expect(s.hosts.map((h) => [h.appliedVersion, h.converged])).toEqual([[5, false], [5, false], [5, false]]);
    expect(s.converged).toBe(false);
    expect(await answers()).toEqual(['C', 'C', 'C']);
    const text = await elastic(['cluster', 'status', ...E()]);
    expect(text.stdout).toContain('v6 refused');
    // Rolling back to what they serve is a new version they all apply.
    expect((await elastic(['cluster', 'rollback', '5', ...E()])).exitCode).toBe(0);
    await converged(7);
    expect(await answers()).toEqual(['C', 'C', 'C']);
  }, 60_000);
});
