import { afterAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { TEST_TOKEN } from '../support/proxy.js';

/**
 * The warm path's private directory (edge-haproxy-*) of an edge killed with -9 is removed by the
 * next edge's start, and nothing that is not a dead edge's own directory is. Ports 26100-26109.
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-warm-leftover-'));
const run = join(dir, 'run');
const env = { CI: 'true', ELASTIC_RUN_DIR: run, ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_EDGE_TOKEN: TEST_TOKEN };
const procs: ResultPromise[] = [];
afterAll(async () => {
  for (const p of procs) {
    if (p.pid && pidAlive(p.pid)) process.kill(p.pid, 'SIGTERM');
    await p;
  }
  rmSync(dir, { recursive: true, force: true });
});

async function cliEdge(name: string): Promise<{ proc: ResultPromise; haproxyPid: number }> {
  const proc = execa(process.execPath, [BIN, 'proxy', 'edge', '--json', '-p', '26101', '--name', name], { reject: false, stdin: 'ignore', env });
  procs.push(proc);
  await new LineReader(proc.stdout!).json((l: { type?: string }) => l.type === 'listening', `edge ${name} listening`);
  const snap = await requestStatus<Snapshot>(join(run, `edge.${name}.sock`));
  return { proc, haproxyPid: (snap.config.warm as { haproxyPid: number }).haproxyPid };
}

const warmDirs = () => readdirSync(run).filter((n) => n.startsWith('edge-haproxy-')).sort();

describe('proxy edge: warm-path directories left by a killed edge', () => {
  it('the next start removes a dead edge\'s directory, and only that', async () => {
    const first = await cliEdge('left1');
    const [left] = warmDirs();
    expect(left).toBeDefined();
    process.kill(first.proc.pid!, 'SIGKILL');
    await first.proc;
    await waitFor(() => !pidAlive(first.haproxyPid), 'HAProxy gone with the edge', 5000);
    expect(existsSync(join(run, left!))).toBe(true); // nobody could clean it

    // Lookalikes that are not a dead edge's own directory.
    const dead = JSON.stringify({ edge: first.proc.pid, haproxy: first.haproxyPid });
    const target = join(dir, 'elsewhere');
    mkdirSync(target);
    writeFileSync(join(target, 'owner'), dead);
    writeFileSync(join(target, 'keep'), 'x');
    symlinkSync(target, join(run, 'edge-haproxy-link')); // a symlink is never followed
    mkdirSync(join(run, 'edge-haproxy-nomarker'));
    mkdirSync(join(run, 'edge-haproxy-live'));
    writeFileSync(join(run, 'edge-haproxy-live', 'owner'), JSON.stringify({ edge: process.pid }));
    mkdirSync(join(run, 'edge-haproxy-markerdir'));
    mkdirSync(join(run, 'edge-haproxy-markerdir', 'owner')); // the marker must be a regular file
    mkdirSync(join(run, 'edge-haproxy-garbled'));
    writeFileSync(join(run, 'edge-haproxy-garbled', 'owner'), '{"edge":"1; rm -rf /"}');

    const second = await cliEdge('left2');
    const now = warmDirs();
    expect(now).not.toContain(left);
    for (const kept of ['edge-haproxy-link', 'edge-haproxy-nomarker', 'edge-haproxy-live', 'edge-haproxy-markerdir', 'edge-haproxy-garbled']) expect(now).toContain(kept);
    expect(existsSync(join(target, 'keep'))).toBe(true);
    expect(now).toHaveLength(6); // the five lookalikes and the new edge's own
    second.proc.kill('SIGTERM');
    await second.proc;
    expect(warmDirs()).toHaveLength(5); // a clean stop removes its own
  });
});
