/**
 * Benchmark: container start -> `added` line latency of `elastic discover --watch --json`.
 * Starts N containers one at a time against the real dockerd and measures, for each, the time
 * from "the container is running" (the start API call returned; dockerd emits its `start` event
 * then) to the `added` line on the watcher's stdout. The container's own start time (runc,
 * ~150-200 ms here) is reported beside it and is not elastic's.
 *
 *   npx tsx bench/discover/added-latency.ts [N]      (default N=40; needs scripts/test-host.sh)
 */
import { execa } from 'execa';
import { BIN } from '../../test/support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../../test/support/docker.js';
import { LineReader } from '../../test/support/lines.js';
import { percentile } from '../stats.js';

const N = Number(process.argv[2] ?? 40);
await requireDocker();
const tc = new TestContainers();
const image = `elastic-test/bench-${tc.runId}:1`;
await docker.getImage(TEST_IMAGE).tag({ repo: `elastic-test/bench-${tc.runId}`, tag: '1' });
const proc = execa(process.execPath, [BIN, 'discover', '--watch', '--json', '--image', image, '--port', '80'], { reject: false, stdin: 'ignore' });
const out = new LineReader(proc.stdout!);
const samples: number[] = [];
const startMs: number[] = [];
try {
  await new Promise((r) => setTimeout(r, 1500)); // watcher connected
  for (let i = 0; i < N; i++) {
    const c = await docker.createContainer({ Image: image, Labels: { 'elastic.test': tc.runId } });
    const from = out.lines.length;
    const t0 = performance.now();
    await c.start();
    const t1 = performance.now();
    startMs.push(t1 - t0);
    await out.json<{ type: string; backend: { id: string } }>((l) => l.type === 'added' && c.id.startsWith(l.backend.id.slice(7)), `added ${i}`, 10_000, from);
    samples.push(performance.now() - t1);
    await c.remove({ force: true });
  }
} finally {
  if (proc.pid) process.kill(proc.pid, 'SIGTERM');
  await proc;
  await tc.cleanup();
  await docker.getImage(image).remove().catch(() => {});
}
const p = (q: number) => percentile(samples, q).toFixed(1);
console.log(JSON.stringify({ bench: 'discover-added-latency', n: samples.length, p50Ms: +p(50), p99Ms: +p(99), maxMs: +Math.max(...samples).toFixed(1), containerStartP50Ms: +percentile(startMs, 50).toFixed(1) }));
