import { afterAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import type { RouteView } from '../../src/engine/proxy.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { appCommand, get, SLOW_APP, type Reply } from '../support/proxy.js';

/**
 * Stopping the edge (SIGTERM) cuts no client in flight: it stops accepting, answers the queued
 * ones 503, lets the ones being served finish within --stop-grace, then stops nodes and apps.
 * Before, every instance's process group got TERM at once (4 in-flight requests: 4 empty
 * replies). Built binary, real processes. Ports 23020-23029.
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-proxy-stop-'));
const env = { CI: 'true', ELASTIC_RUN_DIR: join(dir, 'run'), ELASTIC_STATE_DIR: join(dir, 'state') };
const procs: ResultPromise[] = [];
afterAll(async () => {
  for (const p of procs) if (p.exitCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function edge(args: string[], extraEnv: Record<string, string> = {}) {
  const proc = execa(process.execPath, [BIN, 'proxy', 'edge', '--json', ...args], { reject: false, stdin: 'ignore', env: { ...env, ...extraEnv } });
  procs.push(proc);
  return { proc, out: new LineReader(proc.stdout!), err: new LineReader(proc.stderr!) };
}

const routeOf = async (name: string) => (await requestStatus<Snapshot>(join(env.ELASTIC_RUN_DIR, `edge.${name}.sock`))).services.default as RouteView;
const settle = (p: Promise<Reply>) => p.then((r) => ({ status: r.status, body: r.body }), (e: Error) => ({ status: 0, body: e.message }));

describe('stopping the edge', () => {
  it('SIGTERM: 4 in-flight slow requests all complete, a queued one gets 503, then nodes and apps stop', async () => {
    const port = 23020;
    const node = [process.execPath, BIN, 'proxy', 'node', '--', ...appCommand(SLOW_APP, { DELAY_MS: 3000 })];
    const e = edge(['--http-port', String(port), '--default-route', 'default', '--name', 'stop1', '--max-instances', '4', '--start-burst', '4', '--stop-grace', '10', '--', ...node]);
    await e.out.json((l: { type?: string }) => l.type === 'listening', 'the listening line');
    const inflight = Array.from({ length: 4 }, () => settle(get(port, { timeoutMs: 30_000 })));
    const r = await waitFor(async () => {
      const v = await routeOf('stop1');
      return v.active === 4 ? v : null;
    }, 'four requests handed to four apps', 20_000, 25);
    const pids = r!.nodeList.map((n) => n.pid);
    const queued = settle(get(port, { timeoutMs: 30_000 }));
    await waitFor(async () => (await routeOf('stop1')).queued === 1, 'a fifth request queued', 5000, 25);
    const t0 = Date.now();
    process.kill(e.proc.pid!, 'SIGTERM');
    // Queued: answered at once, not cut.
    expect(await queued).toMatchObject({ status: 503 });
    expect(Date.now() - t0).toBeLessThan(2000);
    // New clients are not accepted any more.
    await waitFor(async () => (await settle(get(port, { timeoutMs: 2000 }))).status === 0, 'the client port closed', 3000);
    // In flight: every one completes.
    const replies = await Promise.all(inflight);
    expect(replies.map((x) => x.status), JSON.stringify(replies)).toEqual([200, 200, 200, 200]);
    for (const x of replies) expect(x.body).toMatch(/^slow \d+ 1\n$/);
    const done = await e.proc;
    expect(done.exitCode, String(done.stderr)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000); // not the whole grace: nodes stop once their client is done
    // Nodes and their apps are gone.
    const apps = replies.map((x) => Number(x.body.split(' ')[1]));
    await waitFor(() => [...pids, ...apps].every((p) => !pidAlive(p)), 'nodes and apps gone', 5000);
  });

  it('a client still served at the end of --stop-grace is closed, and the apps are still stopped', async () => {
    const port = 23021;
    const node = [process.execPath, BIN, 'proxy', 'node', '--', ...appCommand(SLOW_APP, { DELAY_MS: 20_000 })];
    const e = edge(['-p', String(port), '--name', 'stop2', '--stop-grace', '1', '--', ...node]);
    await e.out.json((l: { type?: string }) => l.type === 'listening', 'the listening line');
    const inflight = settle(get(port, { timeoutMs: 30_000 }));
    const r = await waitFor(async () => {
      const v = await routeOf('stop2');
      return v.active === 1 ? v : null;
    }, 'one request handed to an app', 20_000, 25);
    const nodePid = r!.nodeList[0]!.pid;
    const nodeSnap = await requestStatus<Snapshot>(join(env.ELASTIC_RUN_DIR, `node.default-${nodePid}.sock`));
    const appPid = (nodeSnap.services.default as { appPid: number }).appPid;
    const t0 = Date.now();
    process.kill(e.proc.pid!, 'SIGTERM');
    const done = await e.proc;
    expect(done.exitCode).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(String(done.stderr)).toMatch(/clients still served at the end of --stop-grace/);
    expect((await inflight).status).toBe(0);
    await waitFor(() => !pidAlive(nodePid) && !pidAlive(appPid), 'the node and its app gone', 5000);
  });
});
