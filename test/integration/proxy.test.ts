import { afterAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import type { RouteView } from '../../src/engine/proxy.js';
import { BIN, elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { appCommand, get, rawConnect, SLOW_APP, FAST_APP } from '../support/proxy.js';
import { pidAlive as isAlive } from '../../src/engine/runtime/pid.js';

/**
 * End to end through the built binary: brxy's demo done right, a stop that takes the started
 * instances with it, and queue memory under 1,000 waiting clients. Ports 18500-18599.
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-proxy-cli-'));
const runDir = join(dir, 'run');
const baseEnv = { CI: 'true', ELASTIC_RUN_DIR: runDir, ELASTIC_STATE_DIR: join(dir, 'state') };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function startEdge(args: string[], env: Record<string, string> = {}): { proc: ResultPromise; out: LineReader; err: LineReader } {
  const proc = execa(process.execPath, [BIN, 'proxy', 'edge', '--json', ...args], { reject: false, stdin: 'ignore', env: { ...baseEnv, ...env } });
  return { proc, out: new LineReader(proc.stdout!), err: new LineReader(proc.stderr!) };
}

async function stop(proc: ResultPromise): Promise<void> {
  if (proc.exitCode === null && proc.pid && isAlive(proc.pid)) process.kill(proc.pid, 'SIGTERM');
  const r = await proc;
  if (r.exitCode === undefined) process.kill(proc.pid!, 'SIGKILL');
}

const snapshot = (port: number) => requestStatus<Snapshot>(join(runDir, `edge.${port}.sock`));
const routeOf = async (port: number) => (await snapshot(port)).services.default as RouteView;

describe('elastic proxy edge / node (built binary)', () => {
  it("brxy's demo: 4 concurrent requests -> 4 instances, all served, one request at a time each; idle -> zero", async () => {
    const port = 18501;
    const overlap = join(dir, 'overlap');
    const cmd = [process.execPath, BIN, 'proxy', 'node', '--', ...appCommand(SLOW_APP, { DELAY_MS: 2000, OVERLAP_FILE: overlap })];
    const e = startEdge(['-p', String(port), '--idle-timeout', '1.5', '--max-instances', '6', '--', ...cmd]);
    const appPids: string[] = [];
    try {
      const ready = await e.out.json<{ type: string; nodePort: number }>((l) => l.type === 'listening', 'the listening line');
      expect(ready.nodePort).toBeGreaterThan(0);
      expect(await routeOf(port)).toMatchObject({ nodes: 0, instances: 0, queued: 0 });
      const replies = await Promise.all(Array.from({ length: 4 }, () => get(port, { timeoutMs: 30_000 })));
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      for (const r of replies) appPids.push(r.body.split(' ')[1]!);
      // Four instances were started (one that came up early may have taken a second client).
      expect(existsSync(overlap)).toBe(false); // no app ever had two requests at once
      const after = await routeOf(port);
      expect(after).toMatchObject({ starts: 4, served: 4, timeouts: 0, startFailures: 0 });
      expect(after.waitP50Ms).toBeGreaterThan(0);
      // Idle: every instance is stopped, the apps with them.
      await waitFor(async () => {
        const r = await routeOf(port);
        return r.nodes === 0 && r.instances === 0 && r.stops === 4;
      }, 'scale to zero', 20_000);
      await waitFor(() => appPids.every((p) => !isAlive(Number(p))), 'the apps gone', 10_000);
      // It scales up again from zero.
      expect((await get(port, { timeoutMs: 30_000 })).status).toBe(200);
      expect((await routeOf(port)).starts).toBe(5);
    } finally {
      await stop(e.proc);
    }
    expect((await e.proc).exitCode).toBe(0);
    for (const p of appPids) if (isAlive(Number(p))) process.kill(Number(p), 'SIGKILL');
  });

  it('SIGTERM stops the instances it started, their apps included; min-instances keeps them up meanwhile', async () => {
    const port = 18503;
    const cmd = [process.execPath, BIN, 'proxy', 'node', '--concurrency', '2', '--', ...appCommand(FAST_APP)];
    const e = startEdge(['-p', String(port), '--min-instances', '2', '--idle-timeout', '0.5', '--stop-grace', '3', '--', ...cmd]);
    let pids: number[] = [];
    try {
      await e.out.json((l: { type?: string }) => l.type === 'listening', 'the listening line');
      const r = await waitFor(async () => {
        const v = await routeOf(port);
        return v.nodes === 2 && v.capacity === 4 ? v : null;
      }, 'two instances', 20_000);
      pids = r!.nodeList.map((n) => n.pid);
      const reply = await get(port);
      expect(reply.status).toBe(200);
      pids.push(Number(reply.body.split(' ')[1]));
      await new Promise((res) => setTimeout(res, 1200)); // past the idle timeout: min-instances holds
      expect((await routeOf(port)).nodes).toBe(2);
    } finally {
      await stop(e.proc);
    }
    expect((await e.proc).exitCode).toBe(0);
    await waitFor(() => pids.every((p) => !isAlive(p)), 'started nodes and apps gone', 5000);
  });

  it('1,000 queued connections keep memory bounded; the 1,001st is refused with 503', async () => {
    const port = 18502;
    const e = startEdge(['--http-port', String(port), '--default-route', 'default', '--max-queue', '1000', '--queue-timeout', '120'], { ELASTIC_EDGE_TOKEN: 'memory-test-token-0123456789' });
    const socks: Socket[] = [];
    try {
      await e.out.json((l: { type?: string }) => l.type === 'listening', 'the listening line');
      const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${e.proc.pid}/status`, 'utf8'))![1]) * 1024;
      const before = rss();
      const head = `GET / HTTP/1.1\r\nHost: x.example\r\nX-Pad: ${'p'.repeat(2000)}\r\n\r\n`;
      for (let i = 0; i < 1000; i++) {
        const s = await rawConnect(port);
        s.on('error', () => {});
        s.write(head);
        socks.push(s);
      }
      await waitFor(async () => (await routeOf(port)).queued === 1000, '1000 queued', 20_000);
      const extra = await get(port);
      expect(extra.status).toBe(503);
      expect(extra.headers['retry-after']).toBeDefined();
      const grown = rss() - before;
      // ~2 KiB of head + socket state per client: far below this loose bound.
      expect(grown).toBeLessThan(64 * 1024 * 1024);
      const v = await routeOf(port);
      expect(v).toMatchObject({ queued: 1000, rejected: 1 });
      for (const s of socks.splice(0)) s.destroy();
      await waitFor(async () => (await routeOf(port)).queued === 0, 'the queue empties when clients leave', 10_000);
    } finally {
      for (const s of socks) s.destroy();
      await stop(e.proc);
    }
  });

  it('usage errors: no client port, node without an app command, a bad edge address', async () => {
    const a = await elastic(['proxy', 'edge', '--', 'true'], { env: baseEnv });
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toMatch(/no client port/);
    const b = await elastic(['proxy', 'node', '--edge', '127.0.0.1:1'], { env: { ...baseEnv, ELASTIC_EDGE_TOKEN: 'x'.repeat(20) } });
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/no app command/);
    const c = await elastic(['proxy', 'node', '--edge', 'not an address', '--', 'true'], { env: { ...baseEnv, ELASTIC_EDGE_TOKEN: 'x'.repeat(20) } });
    expect(c.exitCode).toBe(2);
    const d = await elastic(['proxy', 'edge', '-p', '18504', 'stray', '--', 'true'], { env: baseEnv });
    expect(d.exitCode).toBe(2);
    expect(d.stderr).toMatch(/unexpected argument "stray"/);
    const f = await elastic(['proxy', 'node', '--edge', '127.0.0.1:1', '--', 'true'], { env: { ...baseEnv, ELASTIC_EDGE_TOKEN: 'short' } });
    expect(f.exitCode).toBe(5);
  });
});
