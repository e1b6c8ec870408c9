/**
 * Fleet benchmark (issue 15), 3 hosts on one machine, a real 3-member etcd, real HAProxy:
 *  1. push -> every host applied and serving: N pushes alternating the backend between A and B,
 *     timed from the push call (engine push(), no CLI start-up) to every host's HAProxy answering
 *     with the new backend (HTTP polled every 5 ms); also to every host reporting it applied.
 *  2. a fleet daemon's idle cost with 100 backends over 5 services: CPU and RSS of one host's
 *     daemon over 30 s.
 * Usage: npx tsx bench/fleet/push-applied.ts [pushes=50]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { EtcdCluster } from '../../test/support/etcd.js';
import { get } from 'node:http';
import { FleetHost, startBackend } from '../../test/support/fleet.js';
import { EtcdStore } from '../../src/engine/fleet/etcd.js';
import { Keys } from '../../src/engine/fleet/store.js';
import { push } from '../../src/engine/fleet/versions.js';
import { percentile } from '../stats.js';

const N = Number(process.argv[2] ?? 50);
const FLEET = 'bench';
// Ports 25500-25599 (etcd 25500-25505).
const HOSTS = [0, 1, 2].map((i) => ({ name: `lb-${i + 1}`, web: 25511 + i, metrics: 25541 + i, extra: [0, 1, 2, 3].map((j) => 25520 + i * 4 + j) }));
/** One request on a new connection (no client keep-alive): which backend answers. */
const answer = (port: number) =>
  new Promise<string>((resolve) => {
    const req = get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' }, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body.trim()));
    });
    req.on('error', () => resolve('ERR'));
    req.on('timeout', () => req.destroy());
  });
const A = 25550;
const B = 25551;

const config = (backend: number, idle = false) => `version: 1
name: bench
sources:
  web:
    static: { backends: ["127.0.0.1:${backend}"] }
${idle ? [0, 1, 2, 3].map((j) => `  s${j}:\n    static: { backends: [${Array.from({ length: 25 }, (_, k) => `"127.0.0.${2 + j}:${25560 + k}"`).join(', ')}] }`).join('\n') : ''}
services:
  - name: web
    sources: [web]
    guardrails: { min_backends: 1, max_change: 100 }
    haproxy: { port: 25510, mode: http }
${idle ? [0, 1, 2, 3].map((j) => `  - name: s${j}\n    sources: [s${j}]\n    guardrails: { min_backends: 0, max_change: 100 }\n    haproxy: { port: ${25535 + j}, mode: tcp }`).join('\n') : ''}
sync: { min_interval_ms: 50 }
hosts:
${HOSTS.map((h) => `  ${h.name}:\n    services:\n      web: { haproxy: { port: ${h.web} } }\n${idle ? [0, 1, 2, 3].map((j) => `      s${j}: { haproxy: { port: ${h.extra[j]} } }`).join('\n') + '\n' : ''}    metrics: { prometheus: { port: ${h.metrics} } }`).join('\n')}
`;

/**
 * Where the time goes, per host and push, in ms from the push call: from the daemons' JSON logs,
 * the agent's 'fleet version applied' line (watch event, `current` read, version read, reload
 * returned); then that host's HAProxy answering with the new backend (HTTP, polled every 5 ms).
 */
function stageBreakdown(pushes: ReadonlyArray<{ version: number; at: number }>, hostServing: readonly number[], f: (x: number) => string): void {
  const stages: Record<string, number[]> = { notified: [], current: [], read: [], reloaded: [] };
  let inPlace = 0;
  let reloads = 0;
  // FLEET_BENCH_LOGS=FILE: every host's log lines, for a closer look.
  if (process.env.FLEET_BENCH_LOGS) writeFileSync(process.env.FLEET_BENCH_LOGS, hosts.flatMap((h) => h.err!.lines.map((l) => `${h.name} ${l}`)).join('\n'));
  for (const h of hosts) {
    const recs = h.err!.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
    for (const r of recs) if (r.msg === 'config reloaded') (reloads++, r.inPlace && inPlace++);
    for (const p of pushes) {
      const a = recs.find((r) => r.msg === 'fleet version applied' && r.version === p.version);
      if (!a) continue;
      const off = Date.parse(String(a.time)) - Number(a.reloadedMs) - p.at; // the push call to the version's pushedAt
      for (const [k, field] of [['notified', 'notifiedMs'], ['current', 'currentMs'], ['read', 'readMs'], ['reloaded', 'reloadedMs']] as const) if (typeof a[field] === 'number') stages[k]!.push(off + (a[field] as number));
    }
  }
  stages['serving (one host)'] = [...hostServing];
  console.log('stage (ms from the push call, every host and push): p50 / p99');
  for (const [k, v] of Object.entries(stages)) if (v.length) console.log(`  ${k.padEnd(18)} ${f(percentile(v, 50))} / ${f(percentile(v, 99))} (n=${v.length})`);
  console.log(`  reloads in place (sources re-listed, no pipeline rebuild): ${inPlace} of ${reloads}`);
}

const etcd = new EtcdCluster(25500, 3);
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'bench'));
// Backends close every connection (see startBackend and docs/BENCHMARKS.md).
const servers = [await startBackend(A, 'A'), await startBackend(B, 'B')];
await etcd.start();
const store = new EtcdStore({ fleet: FLEET, endpoints: etcd.endpoints.split(','), dialTimeoutMs: 5000 });
try {
  await push(store, { text: config(A), file: 'bench.yaml' });
  // FLEET_NODE_OPTIONS: V8 flags for the daemons (docs/BENCHMARKS.md, idle RSS).
  for (const h of hosts) h.start(etcd.endpoints, FLEET, [], { NODE_OPTIONS: process.env.FLEET_NODE_OPTIONS ?? "" });
  const until = Date.now() + 30_000;
  while ((await Promise.all(HOSTS.map((h) => answer(h.web)))).some((a) => a !== 'A')) {
    if (Date.now() > until) throw new Error('hosts did not start serving');
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 2000)); // past the first sync of every host
  const serving: number[] = [];
  const applied: number[] = [];
  const pushes: Array<{ version: number; at: number }> = [];
  const hostServing: number[] = []; // per host and push: the push call to that host serving
  // FLEET_BENCH_GAP_MS: a pause between pushes (default 0: the next push as soon as every host serves).
  const gap = Number(process.env.FLEET_BENCH_GAP_MS ?? 0);
  for (let i = 0; i < N; i++) {
    if (gap) await new Promise((r) => setTimeout(r, gap));
    const want = i % 2 === 0 ? 'B' : 'A';
    const t0 = performance.now();
    const at = Date.now();
    // Applied: a watch on the hosts' status keys (the bench must not load etcd with polling).
    let appliedAt = 0;
    let version = 0;
    const allApplied = async () => {
      const { kvs } = await store.list(Keys.hostsPrefix);
      if (!appliedAt && version && kvs.length === 3 && kvs.every((kv) => JSON.parse(kv.value).appliedVersion === version)) appliedAt = performance.now();
    };
    const { revision } = await store.list(Keys.hostsPrefix);
    const w = await store.watch(Keys.hostsPrefix, revision + 1, { change: () => void allApplied(), error: () => {} });
    const r = await push(store, { text: config(want === 'B' ? B : A), file: 'bench.yaml' });
    version = r.version!;
    pushes.push({ version, at });
    // Serving: every host's HAProxy asked every 5 ms, each until it answers with the new backend.
    const waiting = new Set(HOSTS.map((h) => h.web));
    const end = Date.now() + 10_000;
    while (waiting.size) {
      for (const [port, a] of await Promise.all([...waiting].map(async (port) => [port, await answer(port)] as const))) {
        if (a !== want) continue;
        waiting.delete(port);
        hostServing.push(performance.now() - t0);
      }
      if (!waiting.size) break;
      if (Date.now() > end) {
        const { execa } = await import('execa');
        for (const h of hosts) console.log(h.name, (await execa('sh', ['-c', `echo "show servers state" | socat - UNIX:${h.runDir}/render-run-bench/haproxy.sock | cut -d' ' -f1-6,19`], { reject: false })).stdout);
        throw new Error(`push ${i}: not served within 10 s: ${(await Promise.all(HOSTS.map((h) => answer(h.web)))).join()}`);
      }
      await new Promise((res) => setTimeout(res, 5));
    }
    const servedAt = performance.now();
    await allApplied();
    while (!appliedAt && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    await w.cancel();
    serving.push(servedAt - t0);
    if (appliedAt) applied.push(appliedAt - t0);
  }
  const f = (x: number) => `${x.toFixed(0)} ms`;
  console.log(`push -> every host serving (n=${serving.length}): p50 ${f(percentile(serving, 50))}, p99 ${f(percentile(serving, 99))}, max ${f(Math.max(...serving))}`);
  console.log(`push -> every host reported applied (n=${applied.length}): p50 ${f(percentile(applied, 50))}, p99 ${f(percentile(applied, 99))}`);
  stageBreakdown(pushes, hostServing, f);

  // Idle cost: 100 backends over 5 services (1 + 4 x 25), one host's daemon for 30 s.
  await push(store, { text: config(A, true), file: 'bench.yaml' });
  await new Promise((r) => setTimeout(r, 10_000));
  const pid = hosts[0]!.child!.pid!;
  const ticks = () => {
    const f2 = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f2[11]) + Number(f2[12]);
  };
  const c0 = ticks();
  const w0 = Date.now();
  await new Promise((r) => setTimeout(r, 30_000));
  const cpu = ((ticks() - c0) / 100 / ((Date.now() - w0) / 1000)) * 100;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  console.log(`idle fleet daemon, 100 backends over 5 services: ${cpu.toFixed(2)}% of a core, RSS ${rss.toFixed(0)} MB`);
  console.log(`load average: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
} finally {
  await store.close();
  for (const h of hosts) await h.cleanup();
  for (const s of servers) s.close();
  await etcd.stop();
}
