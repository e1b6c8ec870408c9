/**
 * Churn soak (issue 13): containers stop and start all the time while clients keep coming.
 *
 * A pool of containers of one image (busybox httpd as PID 1: it ignores SIGTERM, so every
 * `docker stop` is TERM, then KILL after --stop-timeout seconds, like a real app that does not
 * handle TERM) is served by `elastic map-image --watch` (kernel DNAT on 198.18.0.1:MAP_PORT) and by
 * `elastic render --watch --start` (HAProxy on 127.0.0.1:RENDER_PORT). Every ~2 s one serving
 * container is stopped (docker stop, in the background) and a stopped one started again, keeping
 * at least MIN_SERVING running. Two bounded clients (a new connection per request, CONC each,
 * 5 s request timeout) count failed requests and requests over 1 s on each path. Every 10 s the RSS
 * and open fds of both elastic processes are sampled. At the end both are stopped (the mapping is
 * removed, HAProxy stopped) and the run checks that nothing of it is left.
 *
 *   npx tsx bench/churn/soak.ts [seconds=600] [concurrency=4]
 */
import { execa, type ResultPromise } from 'execa';
import http from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../../test/support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../../test/support/docker.js';
import { LineReader } from '../../test/support/lines.js';
import { percentile } from '../stats.js';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { defaultPaths } from '../../src/engine/render.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';

const SECONDS = Math.min(3600, Math.max(10, Number(process.argv[2] ?? 600)));
const CONC = Math.min(8, Math.max(1, Number(process.argv[3] ?? 4)));
const POOL = 6;
const MIN_SERVING = 3;
const STOP_TIMEOUT = 10;
const MAP_PORT = 18871;
const RENDER_PORT = 18872;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

await requireDocker();
const tc = new TestContainers();
const repo = `churn-soak-${tc.runId}`;
const image = `${repo}:1`;
await docker.getImage(TEST_IMAGE).tag({ repo, tag: '1' });
const dirs = { ELASTIC_STATE_DIR: mkdtempSync(join(tmpdir(), 'churn-state-')), ELASTIC_RUN_DIR: mkdtempSync(join(tmpdir(), 'churn-run-')) };
const env = { CI: 'true', ...dirs };

interface PathStats { ok: number; failed: number; slow: number; latencies: number[]; errors: Map<string, number> }
const stats: Record<'map-image' | 'render', PathStats> = {
  'map-image': { ok: 0, failed: 0, slow: 0, latencies: [], errors: new Map() },
  render: { ok: 0, failed: 0, slow: 0, latencies: [], errors: new Map() },
};

function once(host: string, port: number): Promise<{ ms: number; error?: string }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/id', agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ms: performance.now() - t0, error: res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}` }));
      res.on('error', (e) => resolve({ ms: performance.now() - t0, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout 5 s')));
    req.on('error', (e) => resolve({ ms: performance.now() - t0, error: (e as NodeJS.ErrnoException).code ?? e.message }));
  });
}

async function client(path: keyof typeof stats, host: string, port: number, until: number): Promise<void> {
  const s = stats[path];
  while (Date.now() < until) {
    const r = await once(host, port);
    if (r.error) {
      s.failed++;
      s.errors.set(r.error, (s.errors.get(r.error) ?? 0) + 1);
    } else s.ok++;
    if (r.ms > 1000) s.slow++;
    s.latencies.push(r.ms);
  }
}

function sample(pid: number | undefined): { rss: number; fds: number } {
  if (!pid) return { rss: NaN, fds: NaN };
  try {
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
    return { rss, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rss: NaN, fds: NaN };
  }
}

const procs: ResultPromise[] = [];
const containers: { id: string; stopping: boolean; running: boolean }[] = [];
try {
  for (let i = 0; i < POOL; i++) {
    const c = await docker.createContainer({ Image: image, Labels: { 'elastic.test': tc.runId }, HostConfig: { NetworkMode: 'bridge' } });
    await c.start();
    containers.push({ id: c.id, stopping: false, running: true });
  }
  const map = execa(process.execPath, [BIN, 'map-image', String(MAP_PORT), image, '80', '--watch', '--remove-on-exit'], { reject: false, stdin: 'ignore', env });
  const render = execa(process.execPath, [BIN, 'render', '--service', 'churn', '--bind', `127.0.0.1:${RENDER_PORT}`, '--image', image, '--port', '80', '--start', '--watch', '--instance-name', `churn${process.pid}`], { reject: false, stdin: 'ignore', env });
  procs.push(map, render);
  const mapLog = new LineReader(map.stderr!);
  const renderLog = new LineReader(render.stderr!);
  await mapLog.next((l) => l.includes('applied tcp-'), 'map-image ready', 30_000);
  await renderLog.next((l) => /applied|started/.test(l), 'render ready', 30_000);

  const start = Date.now();
  const until = start + SECONDS * 1000;
  const clients = [...Array(CONC)].flatMap(() => [client('map-image', '198.18.0.1', MAP_PORT, until), client('render', '127.0.0.1', RENDER_PORT, until)]);
  const samples: { t: number; map: { rss: number; fds: number }; render: { rss: number; fds: number } }[] = [];
  let stops = 0;
  let starts = 0;
  let nextSample = Date.now();
  while (Date.now() < until - 3000) {
    const serving = containers.filter((c) => c.running && !c.stopping);
    if (serving.length > MIN_SERVING) {
      const victim = serving[Math.floor(Math.random() * serving.length)]!;
      victim.stopping = true;
      stops++;
      void docker.getContainer(victim.id).stop({ t: STOP_TIMEOUT }).catch(() => {}).finally(() => {
        victim.running = false;
        victim.stopping = false;
      });
    }
    const stopped = containers.filter((c) => !c.running && !c.stopping);
    if (stopped.length > 0) {
      const back = stopped[Math.floor(Math.random() * stopped.length)]!;
      back.running = true;
      starts++;
      await docker.getContainer(back.id).start().catch(() => { back.running = false; });
    }
    if (Date.now() >= nextSample) {
      samples.push({ t: Math.round((Date.now() - start) / 1000), map: sample(map.pid), render: sample(render.pid) });
      nextSample += 10_000;
    }
    await sleep(1500 + Math.random() * 1000);
  }
  await Promise.all(clients);
  samples.push({ t: Math.round((Date.now() - start) / 1000), map: sample(map.pid), render: sample(render.pid) });

  console.log(`churn soak: ${SECONDS} s, ${CONC} client(s) per path, ${stops} stops, ${starts} starts, pool ${POOL}, docker stop -t ${STOP_TIMEOUT} (the app ignores TERM)`);
  for (const [path, s] of Object.entries(stats)) {
    const total = s.ok + s.failed;
    console.log(`${path}: ${total} requests, failed ${s.failed} (${((100 * s.failed) / total).toFixed(3)}%), over 1 s ${s.slow}, failed or over 1 s at most ${((100 * (s.failed + s.slow)) / total).toFixed(3)}%, p50 ${percentile(s.latencies, 50).toFixed(1)} ms, p99 ${percentile(s.latencies, 99).toFixed(1)} ms, errors ${JSON.stringify(Object.fromEntries(s.errors))}`);
  }
  const first = samples[1] ?? samples[0]!;
  const last = samples[samples.length - 1]!;
  console.log(`map-image process: RSS ${first.map.rss.toFixed(1)} -> ${last.map.rss.toFixed(1)} MB, fds ${first.map.fds} -> ${last.map.fds}`);
  console.log(`render process: RSS ${first.render.rss.toFixed(1)} -> ${last.render.rss.toFixed(1)} MB, fds ${first.render.fds} -> ${last.render.fds}`);
  console.log(`samples (t s: map RSS MB/fds, render RSS MB/fds): ${samples.map((x) => `${x.t}:${x.map.rss.toFixed(0)}/${x.map.fds},${x.render.rss.toFixed(0)}/${x.render.fds}`).join(' ')}`);
} finally {
  for (const p of procs) if (p.pid) process.kill(p.pid, 'SIGTERM');
  await Promise.all(procs.map((p) => p.catch(() => {})));
  const d = defaultPaths(`churn${process.pid}`, 'haproxy', dirs);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop();
  await execa(process.execPath, [BIN, 'map-image', 'stop', '--all'], { reject: false, env });
  await tc.cleanup();
  await docker.getImage(image).remove().catch(() => {});
  const own = namespaceFor(dirs.ELASTIC_STATE_DIR).nftTable;
  const left = (await execa('nft', ['list', 'tables'], { reject: false })).stdout.split('\n').filter((l) => l.endsWith(` ${own}`));
  const leftC = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`elastic.test=${tc.runId}`] }) });
  console.log(`left after stop: ${leftC.length} containers; this run's nft table: ${left.length ? left.join(', ') : 'none'}`);
  rmSync(dirs.ELASTIC_STATE_DIR, { recursive: true, force: true });
  rmSync(dirs.ELASTIC_RUN_DIR, { recursive: true, force: true });
}
