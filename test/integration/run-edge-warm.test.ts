import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { appCommand, get } from '../support/proxy.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';

/**
 * `elastic run` with an `edge:` service takes the warm path as `proxy edge` does (the same engine
 * function, warm: haproxy by default): scale from zero through the edge, then HAProxy straight to
 * the local node's app. The built binary, real HAProxy and nodes. Ports 26110-26119.
 */
const WARM_APP = fileURLToPath(new URL('../fixtures/proxy/warm-app.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'elastic-run-edge-'));
const runDir = join(dir, 'run');
const file = join(dir, 'elastic.yaml');
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid && pidAlive(c.pid)) {
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

interface EdgeStatus {
  warm: { haproxyPid: number | null } | null;
  routes: Record<string, { path: string; nodes: number; nodeList: Array<{ warm: boolean; served: number }> }>;
}

describe('elastic run: an edge service on the warm path', () => {
  it('scales from zero, then serves through its HAProxy straight to the app (status path warm)', async () => {
    const node = [process.execPath, BIN, 'proxy', 'node', '--concurrency', '2', '--', ...appCommand(WARM_APP)];
    writeFileSync(file, `version: 1
name: runedge
sources:
  none: { static: { backends: ["127.0.0.1:26119"] } }
services:
  - name: api
    sources: [none]
    edge: { port: 26111, idle_timeout_ms: 0, command: ${JSON.stringify(node)} }
`);
    const child = spawn(process.execPath, [BIN, 'run', '-c', file, '--log-json'], { env: { ...process.env, CI: 'true', ELASTIC_RUN_DIR: runDir, ELASTIC_STATE_DIR: join(dir, 'state') }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const err = new LineReader(child.stderr!);
    const edge = async () => ((await requestStatus<Snapshot>(join(runDir, 'run.runedge.sock'))).services.api as { appliers: Record<string, EdgeStatus> }).appliers['edge:api']!;
    await waitFor(async () => (await edge().catch(() => null))?.routes.api !== undefined, 'the daemon serving its edge', 30_000, 100).catch((e) => {
      throw new Error(`${(e as Error).message}\n${err.lines.join('\n')}`);
    });
    const first = await edge();
    expect(first.warm?.haproxyPid).toBeGreaterThan(0); // the warm path's HAProxy runs
    expect(first.routes.api!.path).toBe('cold');

    const cold = await get(26111, { timeoutMs: 20_000 }); // scale from zero: the edge holds it
    expect(cold.status).toBe(200);
    expect(cold.body).toMatch(/^warm \d+/);
    await waitFor(async () => (await edge()).routes.api!.path === 'warm', 'the route warm', 10_000);
    const replies = await Promise.all(Array.from({ length: 6 }, () => get(26111, { timeoutMs: 20_000 })));
    expect(replies.map((r) => r.status)).toEqual(Array(6).fill(200));
    const warm = await edge();
    expect(warm.routes.api!.nodes).toBe(1);
    expect(warm.routes.api!.nodeList[0]!.warm).toBe(true);
    // On the warm path a node's `served` is HAProxy's session count to its app.
    await waitFor(async () => (await edge()).routes.api!.nodeList[0]!.served >= 6, 'HAProxy carried the warm requests', 15_000);

    child.kill('SIGTERM');
    expect(await new Promise((r) => child.once('exit', (code) => r(code)))).toBe(0);
    expect(pidAlive(warm.warm!.haproxyPid!)).toBe(false);
  });
});
