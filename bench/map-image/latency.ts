/**
 * Benchmark: container start -> first connection DNATed to it, through `elastic map-image --watch`.
 * For each of N containers (one at a time, the only backend): t0 = the start API call returned
 * (the container runs; dockerd emits `start`), then a client connects to the mapped port every
 * millisecond until the answer comes from that container. Measured end to end: Docker event,
 * discovery re-list, apply (state write + one kernel transaction), first SYN through the DNAT.
 *
 *   npx tsx bench/map-image/latency.ts [nft|iptables] [N=30]
 */
import { execa } from 'execa';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../../test/support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../../test/support/docker.js';
import { LineReader } from '../../test/support/lines.js';
import { percentile } from '../stats.js';

const plane = process.argv[2] ?? 'nft';
const N = Number(process.argv[3] ?? 30);
const PORT = 18395;
await requireDocker();
const tc = new TestContainers();
const image = `mapimg-bench-${tc.runId}:1`;
await docker.getImage(TEST_IMAGE).tag({ repo: `mapimg-bench-${tc.runId}`, tag: '1' });
const dirs = { ELASTIC_STATE_DIR: mkdtempSync(join(tmpdir(), 'mapimg-b-')), ELASTIC_RUN_DIR: mkdtempSync(join(tmpdir(), 'mapimg-b-')) };
const proc = execa(process.execPath, [BIN, 'map-image', String(PORT), image, '80', '--watch', '--remove-on-exit', '--dataplane', plane], { reject: false, stdin: 'ignore', env: { CI: 'true', ...dirs } });
const err = new LineReader(proc.stderr!);

function get(): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '198.18.0.1', port: PORT, path: '/id', agent: false, timeout: 200 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body.trim()));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
  });
}

const samples: number[] = [];
try {
  await err.next((l) => l.includes('applied tcp-'), 'watcher ready', 20_000);
  for (let i = 0; i < N; i++) {
    const c = await docker.createContainer({ Image: image, Labels: { 'elastic.test': tc.runId } });
    const from = err.lines.length;
    await c.start();
    const t0 = performance.now();
    const host = (await c.inspect()).Config.Hostname;
    const deadline = t0 + 5000;
    while (performance.now() < deadline && (await get()) !== host) await new Promise((r) => setTimeout(r, 1));
    samples.push(performance.now() - t0);
    await c.remove({ force: true });
    await err.next((l) => l.includes('applied tcp-') && l.includes(': 0 backend(s)'), 'removed', 10_000, from);
  }
} finally {
  if (proc.pid) process.kill(proc.pid, 'SIGTERM');
  await proc;
  await tc.cleanup();
  await docker.getImage(image).remove().catch(() => {});
  rmSync(dirs.ELASTIC_STATE_DIR, { recursive: true, force: true });
  rmSync(dirs.ELASTIC_RUN_DIR, { recursive: true, force: true });
}
const f = (q: number) => +percentile(samples, q).toFixed(1);
console.log(JSON.stringify({ plane, n: samples.length, p50Ms: f(50), p90Ms: f(90), p99Ms: f(99), maxMs: f(100) }));
