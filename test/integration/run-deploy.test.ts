import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BIN, elastic } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { listStatusSockets, requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * `elastic run` with a `deploys:` section: the built binary, spawned and killed by pid, with the
 * real dockerd and HAProxy. The daemon deploys the replicas itself and its HAProxy service follows
 * them through a `label: elastic.service=<name>` source.
 */
const SERVICE = 'rundpl-web';
const stateDir = ownedStateDir('rundpl-state-');
const runDir = mkdtempSync(join(tmpdir(), 'rundpl-run-'));
const dir = mkdtempSync(join(tmpdir(), 'rundpl-cfg-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const file = join(dir, 'elastic.yaml');
const PORT = 18850;
const children: ChildProcess[] = [];

const config = (replicas: number | string) => `version: 1
name: rundpl
sources:
  deployed:
    docker: { label: ["elastic.service=${SERVICE}"], port: 80 }
services:
  - name: ${SERVICE}
    sources: [deployed]
    guardrails: { min_backends: 1, max_change: 100 }
    haproxy: { port: ${PORT}, mode: http }
deploys:
  - { service: ${SERVICE}, image: ${TEST_IMAGE}, replicas: ${replicas}, port: 80, health: tcp }
  - { service: rundpl-broken, image: elastic-test/rundpl-absent:1, replicas: 1, port: 80 }
sync: { min_interval_ms: 50 }
`;

const deployed = async () => docker.listContainers({ filters: JSON.stringify({ label: [`elastic.service=${SERVICE}`], status: ['running'] }) });
const ids = async () => new Set((await deployed()).map((c) => c.Id.slice(0, 12)));
/** Which backends answer through HAProxy: container hostnames (= 12-hex ids) seen in `n` requests. */
async function answering(n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await fetch(`http://127.0.0.1:${PORT}/id`, { signal: AbortSignal.timeout(3000), headers: { connection: 'close' } }).catch(() => null);
    seen.add(res ? (await res.text()).trim() : 'ERR');
  }
  return seen;
}
const same = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((x) => b.has(x));
const served = async (n: number) => {
  const want = await ids();
  return want.size === n && same(await answering(n * 6), want);
};
const statusOf = () => requestStatus<Snapshot>(join(runDir, 'run.rundpl.sock'));
type DeployEntry = { deploy?: { state: string; desired: number; phase: string | null; error: string | null; replicas: Record<string, unknown> } };

async function removeDeployed(): Promise<void> {
  const all = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`elastic.service=${SERVICE}`] }) });
  await Promise.all(all.map(async (c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
}

beforeAll(async () => {
  await requireDocker();
  await removeDeployed(); // leftovers of an aborted earlier run
}, 30_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) await Promise.resolve().then(() => process.kill(c.pid!, 'SIGKILL')).catch(() => {});
  const d = defaultPaths('run-rundpl', 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  await removeDeployed();
  for (const p of [stateDir, runDir, dir]) rmSync(p, { recursive: true, force: true });
}, 60_000);

describe('elastic run: deploys', () => {
  let child: ChildProcess;
  let err: LineReader;
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && err) process.stderr.write(`daemon stderr:\n${err.lines.slice(-40).join('\n')}\n`);
  });

  it('deploys 2 replicas and HAProxy serves both; SIGHUP scales to 3; a bad config is refused', async () => {
    writeFileSync(file, config(2));
    child = spawn(process.execPath, [BIN, 'run', '-c', file, '--log-json'], { env: { ...process.env, ...env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    err = new LineReader(child.stderr!);

    await waitFor(async () => (await ids()).size === 2, '2 replicas running', 30_000, 200);
    await waitFor(async () => served(2), 'HAProxy serves both replicas', 20_000, 200);
    await waitFor(async () => ((await statusOf()).services[SERVICE] as DeployEntry).deploy?.state === 'ok', 'deploy reported ok', 20_000, 200);
    const first = ((await statusOf()).services[SERVICE] as DeployEntry & { backends: unknown[] });
    expect(first.deploy).toMatchObject({ desired: 2, phase: 'steady', error: null });
    expect(Object.keys(first.deploy!.replicas)).toHaveLength(2);
    expect(first.backends).toHaveLength(2);
    // A deploy that cannot run (no such image) fails alone: logged, in status, the daemon carries on.
    expect((first as unknown as { deploy: unknown }).deploy).toBeDefined();
    const broken = ((await statusOf()).services['rundpl-broken'] as DeployEntry & { servedBy: string[] }).deploy;
    expect(broken).toMatchObject({ state: 'failed' });
    expect(broken!.error).toMatch(/rundpl-absent/);
    expect(err.lines.some((l) => l.includes('deploy rundpl-broken failed'))).toBe(true);
    // The daemon answers deploy's drain registry (kind run) for its own appliers; no alias socket.
    const sockets = await listStatusSockets(runDir);
    expect(sockets.some((s) => s.kind === 'run' && s.name === 'rundpl')).toBe(true);
    expect(sockets.some((s) => s.kind === 'render')).toBe(false);

    writeFileSync(file, config(3));
    process.kill(child.pid!, 'SIGHUP');
    await waitFor(async () => (await ids()).size === 3, '3 replicas running', 30_000, 200);
    await waitFor(async () => served(3), 'HAProxy serves the 3 replicas', 20_000, 200);
    await waitFor(async () => {
      const d = ((await statusOf()).services[SERVICE] as DeployEntry).deploy;
      return d?.state === 'ok' && d.desired === 3;
    }, 'deploy reported 3', 20_000, 200);

    const from = err.lines.length;
    writeFileSync(file, config(-1));
    process.kill(child.pid!, 'SIGHUP');
    await err.next((l) => l.includes('new config refused'), 'the bad config refused', 10_000, from);
    expect(child.exitCode).toBeNull();
    expect((await ids()).size).toBe(3);
    expect(await served(3)).toBe(true);
    expect(((await statusOf()).services[SERVICE] as DeployEntry).deploy?.desired).toBe(3);

    // Scale down: the old replica is drained out of the daemon's own HAProxy (through the daemon's
    // drain registry socket, answered while its own rollout waits) before it stops.
    writeFileSync(file, config(2));
    process.kill(child.pid!, 'SIGHUP');
    await waitFor(async () => (await ids()).size === 2, '2 replicas again', 30_000, 200);
    await waitFor(async () => served(2), 'HAProxy serves the 2 left', 20_000, 200);
    await waitFor(async () => (await statusOf()).events.some((e) => e.type === 'drain' && e.message.endsWith(':80 drained')), 'the daemon drained the removed replica', 20_000, 200);

    process.kill(child.pid!, 'SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    // SIGTERM leaves the replicas and HAProxy serving.
    expect(await served(2)).toBe(true);
  }, 90_000);

  it('--once reconciles the deploys before its one sync', async () => {
    writeFileSync(file, config(3));
    const r = await elastic(['run', '-c', file, '--once', '--json'], { env });
    expect(r.exitCode).toBe(0); // the broken deploy is reported, not fatal
    const out = JSON.parse(String(r.stdout)) as { appliers: Record<string, string>; deploys: Record<string, { state: string; desired: number }> };
    expect(out.deploys[SERVICE]).toMatchObject({ state: 'ok', desired: 3 });
    expect(out.deploys['rundpl-broken']).toMatchObject({ state: 'failed' });
    expect((await ids()).size).toBe(3);
    // The new server is in HAProxy; its first health check may still be due.
    await waitFor(async () => served(3), 'HAProxy serves the 3 replicas after --once', 15_000, 200);
  }, 60_000);
});
