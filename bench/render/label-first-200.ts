/**
 * Benchmark (issue 16): a container labelled with a new host is started -> the first 200
 * through the front door for that host. `render --routes-from-labels --watch --start` (HAProxy
 * or nginx) on 127.0.0.1:BENCH_PORT (default 25970), containers on our own network (BENCH_SUBNET, default 198.18.62.128/25); for each of N
 * containers: the time from "the start API call returned" to the first 200 for its Host header
 * (polled every 5 ms, one new connection each). The container's own start is reported beside it.
 * A new host is a structural change: HAProxy reloads seamlessly, nginx gracefully.
 *
 *   npx tsx bench/render/label-first-200.ts [N] [haproxy|nginx]   (default 15 haproxy)
 */
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderStop } from '../../src/engine/render.js';
import { BIN } from '../../test/support/cli.js';
import { docker, requireDocker, TestContainers } from '../../test/support/docker.js';
import { LineReader } from '../../test/support/lines.js';
import { getWithHost } from '../../test/support/route-backends.js';
import { percentile } from '../stats.js';

const N = Number(process.argv[2] ?? 15);
const proxy = (process.argv[3] ?? 'haproxy') as 'haproxy' | 'nginx';
const PORT = Number(process.env.BENCH_PORT ?? 25970);
await requireDocker();
const tc = new TestContainers();
const dir = await mkdtemp(join(tmpdir(), 'el-b200-'));
const env = { ...process.env, CI: 'true', ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
const NET = `elastic-fd-bench-${process.pid}`;
const network = await docker.createNetwork({ Name: NET, Driver: 'bridge', IPAM: { Config: [{ Subnet: process.env.BENCH_SUBNET ?? '198.18.62.128/25' }] }, Labels: { 'elastic.test': tc.runId } });
const proc = execa(process.execPath, [BIN, 'render', '--proxy', proxy, '--routes-from-labels', '--bind', `127.0.0.1:${PORT}`, '--network', NET, '--label', `elastic.test=${tc.runId}`, '--instance-name', 'b200', '--start', '--watch', '--wait', '20ms:100ms', '--json'], { reject: false, stdin: 'ignore', env });
const out = new LineReader(proc.stdout!);
const samples: number[] = [];
const applied: number[] = [];
const startMs: number[] = [];
/** The pass's own duration (render, validate, reload, verify): the rest of `applied` is events + debounce. */
const passMs: number[] = [];
try {
  await out.json<{ action: string }>((r) => r.action === 'start', `${proxy} started`, 30_000);
  for (let i = 0; i < N; i++) {
    const host = `h${i}.bench.example.com`;
    const from = out.lines.length;
    const c = await docker.createContainer({ Image: 'elastic-test/web:1', Labels: { 'elastic.test': tc.runId, 'elastic.http.host': host }, HostConfig: { NetworkMode: NET } });
    const t0 = performance.now();
    await c.start();
    const t1 = performance.now();
    startMs.push(t1 - t0);
    // When the pass that adds the host returns (the proxy has the config), beside the first 200.
    void out.json<{ backends: Record<string, number>; ms: number }>((r) => Object.keys(r.backends ?? {}).some((k) => k.startsWith(`h${i}.bench`)), `pass for ${host}`, 20_000, from).then((r) => {
      applied.push(performance.now() - t1);
      passMs.push(r.ms);
    }, () => {});
    const end = t1 + 10_000;
    for (;;) {
      const a = await getWithHost(PORT, host, '/id', 2000).catch(() => null);
      if (a?.status === 200) break;
      if (performance.now() > end) throw new Error(`no 200 for ${host} within 10 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    samples.push(performance.now() - t1);
  }
} finally {
  proc.kill('SIGTERM');
  await proc;
  await renderStop({ instance: 'b200', proxy, env, timeoutMs: 5000 }).catch(() => {});
  await tc.cleanup();
  await network.remove().catch(() => {});
  await rm(dir, { recursive: true, force: true });
}
const f = (x: number) => x.toFixed(1);
console.log(`${proxy}: container start -> first 200 for its new host, n=${samples.length}: p50 ${f(percentile(samples, 50))} ms, p90 ${f(percentile(samples, 90))} ms, max ${f(Math.max(...samples))} ms; the pass that adds it returned p50 ${f(percentile(applied, 50))} ms (the pass itself p50 ${f(percentile(passMs, 50))} ms: render, haproxy -c, reload, verify); container start itself p50 ${f(percentile(startMs, 50))} ms`);
