import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseProcStat, pidAlive } from '../../src/engine/runtime/pid.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import type { RouteView } from '../../src/engine/proxy.js';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { appCommand, get, TEST_TOKEN } from '../support/proxy.js';

/**
 * `proxy edge --spare`: one `elastic proxy node` per route started and waiting on its stdin, so a
 * cold start skips the node's Node start-up (docs/proxy.md, "Cold start"). The built binary, real
 * HAProxy, real nodes and apps. Ports 26130-26139.
 */
const WARM_APP = fileURLToPath(new URL('../fixtures/proxy/warm-app.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'elastic-proxy-spare-'));
const env = { CI: 'true', ELASTIC_RUN_DIR: join(dir, 'run'), ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_EDGE_TOKEN: TEST_TOKEN };
const procs: ResultPromise[] = [];
const pids: number[] = []; // spares and instances seen: none may outlive the test
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.pid && pidAlive(p.pid)) process.kill(p.pid, 'SIGTERM');
    await p;
  }
  for (const pid of pids.splice(0)) if (pidAlive(pid)) process.kill(-pid, 'SIGKILL'); // ours: left only when a test failed
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function children(ppid: number): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = parseProcStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (st?.ppid === ppid && st.state !== 'Z') out.push({ pid: Number(name), cmd: readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {}
  }
  return out;
}
const nodesOf = (edgePid: number) => children(edgePid).filter((c) => c.cmd.includes(' proxy node '));

async function spareEdge(port: number, name: string, spareFlag: string[] = ['--spare']): Promise<{ edge: ResultPromise }> {
  const node = [process.execPath, BIN, 'proxy', 'node', '--', ...appCommand(WARM_APP)];
  const proc = execa(process.execPath, [BIN, 'proxy', 'edge', '--json', ...spareFlag, '-p', String(port), '--name', name, '--', ...node], { reject: false, stdin: 'ignore', env });
  procs.push(proc);
  await new LineReader(proc.stdout!).json((l: { type?: string }) => l.type === 'listening', `edge ${name} listening`);
  return { edge: proc }; // not the process itself: an async function would wait for it
}

describe('proxy edge --spare: a started, waiting node per route', () => {
  it('the first request is served by the spare, another spare follows, and a stop leaves no process', async () => {
    const { edge } = await spareEdge(26131, 'sp1');
    await waitFor(() => nodesOf(edge.pid!).length === 1, 'the spare started', 10_000);
    const [spare] = nodesOf(edge.pid!);
    pids.push(spare!.pid);
    await new Promise((r) => setTimeout(r, 300));
    expect(children(spare!.pid)).toEqual([]); // waiting: no app yet

    const first = await get(26131, { timeoutMs: 20_000 });
    expect(first.status).toBe(200);
    const st = (await requestStatus<Snapshot>(join(dir, 'run', 'edge.sp1.sock'))).services.default as RouteView;
    expect(st.nodeList.map((n) => n.pid)).toEqual([spare!.pid]); // the spare became the instance
    expect(st.starts).toBe(1);
    await waitFor(() => nodesOf(edge.pid!).some((c) => c.pid !== spare!.pid), 'a new spare', 10_000);
    const next = nodesOf(edge.pid!).find((c) => c.pid !== spare!.pid)!;
    pids.push(next.pid);
    const app = children(spare!.pid)[0]!.pid;

    edge.kill('SIGTERM');
    expect((await edge).exitCode).toBe(0);
    await waitFor(() => ![spare!.pid, next.pid, app].some(pidAlive), 'instance, app and spare gone', 10_000);
  });

  it('the spare of an edge killed with -9 exits by itself (its stdin ends)', async () => {
    const { edge } = await spareEdge(26132, 'sp2');
    await waitFor(() => nodesOf(edge.pid!).length === 1, 'the spare started', 10_000);
    const [spare] = nodesOf(edge.pid!);
    pids.push(spare!.pid);
    process.kill(edge.pid!, 'SIGKILL');
    await edge;
    await waitFor(() => !pidAlive(spare!.pid), 'the spare gone with the edge', 10_000);
  });

  it('--spare without a start command is a usage error', async () => {
    const r = await execa(process.execPath, [BIN, 'proxy', 'edge', '--spare', '-p', '26133'], { reject: false, stdin: 'ignore', env });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--spare needs a start command/);
  });

  it('the spare is the default when the start command is elastic proxy node; --no-spare turns it off (ports 26810-26811)', async () => {
    const { edge } = await spareEdge(26810, 'spd1', []);
    await waitFor(() => nodesOf(edge.pid!).length === 1, 'the spare started without --spare', 10_000);
    pids.push(nodesOf(edge.pid!)[0]!.pid);
    const st = await requestStatus<Snapshot>(join(dir, 'run', 'edge.spd1.sock'));
    expect((st.config as { spare?: boolean }).spare).toBe(true);
    const off = await spareEdge(26811, 'spd2', ['--no-spare']);
    await new Promise((r) => setTimeout(r, 1500));
    expect(nodesOf(off.edge.pid!)).toEqual([]);
    expect(((await requestStatus<Snapshot>(join(dir, 'run', 'edge.spd2.sock'))).config as { spare?: boolean }).spare).toBe(false);
    edge.kill('SIGTERM');
    off.edge.kill('SIGTERM');
    expect((await edge).exitCode).toBe(0);
    expect((await off.edge).exitCode).toBe(0);
  });
});
