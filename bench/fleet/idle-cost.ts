/**
 * A fleet daemon's idle cost (issue 15: < 1% of a core and < 100 MB RSS with 100 backends over
 * 5 services): one host (default lease TTL, so it leads: heartbeat and keepalives included) on a
 * 1-member etcd, real HAProxy. After SETTLE s, CPU (user + system, all threads) over IDLE s and
 * RSS at the end, with where the memory is (bench/fleet/mem-probe.cjs); then the same config
 * with `run -c`, for comparison. Usage: npx tsx bench/fleet/idle-cost.ts   (ports 26060-26099)
 * FLEET_NODE_OPTIONS="..." adds V8 flags; IDLE_SETTLE_S (20) and IDLE_S (60) change the times.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from '../../test/support/cli.js';
import { EtcdCluster } from '../../test/support/etcd.js';
import { FleetHost } from '../../test/support/fleet.js';
import { EtcdStore } from '../../src/engine/fleet/etcd.js';
import { push } from '../../src/engine/fleet/versions.js';
import { defaultPaths } from '../../src/engine/render.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';

const config = (metrics: number) => `version: 1
name: idlemem
sources:
${[0, 1, 2, 3, 4].map((j) => `  s${j}:\n    static: { backends: [${Array.from({ length: 20 }, (_, k) => `"127.0.0.${2 + j}:${26060 + k}"`).join(', ')}] }`).join('\n')}
services:
${[0, 1, 2, 3, 4].map((j) => `  - name: s${j}\n    sources: [s${j}]\n    guardrails: { min_backends: 0, max_change: 100 }\n    haproxy: { port: ${26090 + j}, mode: tcp }`).join('\n')}
metrics: { prometheus: { port: ${metrics} } }
`;
const SETTLE = Number(process.env.IDLE_SETTLE_S ?? 20) * 1000;
const IDLE = Number(process.env.IDLE_S ?? 60) * 1000;
const dir = mkdtempSync(join(tmpdir(), 'idle-cost-'));
const probe = join(dir, 'probe.json');
const env = { ...process.env, NODE_OPTIONS: `${process.env.FLEET_NODE_OPTIONS ?? ''} --require ${join(import.meta.dirname, 'mem-probe.cjs')}`, MEM_PROBE_OUT: probe };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, all threads, in ticks of 10 ms
};
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const mb = (n: number) => (n / 1048576).toFixed(1);

/** Settle, then CPU over IDLE and RSS, and the daemon's own memory breakdown. */
async function measure(what: string, child: ChildProcess): Promise<void> {
  const pid = child.pid!;
  await sleep(SETTLE);
  const c0 = cpuSeconds(pid);
  const t0 = Date.now();
  await sleep(IDLE);
  const cpu = ((cpuSeconds(pid) - c0) / ((Date.now() - t0) / 1000)) * 100;
  const rss = rssMb(pid);
  process.kill(pid, 'SIGUSR2');
  await sleep(500);
  const p = JSON.parse(readFileSync(probe, 'utf8')) as { memory: NodeJS.MemoryUsage; spaces: Record<string, { size: number; used: number }> };
  const spaces = Object.entries(p.spaces).map(([k, v]) => `${k} ${mb(v.size)}/${mb(v.used)}`).join(', ');
  console.log(`${what}: CPU ${cpu.toFixed(2)}% of a core over ${IDLE / 1000} s (after ${SETTLE / 1000} s), RSS ${rss.toFixed(0)} MB`);
  console.log(`  V8 heap ${mb(p.memory.heapTotal)} MB (used ${mb(p.memory.heapUsed)}), external ${mb(p.memory.external)} MB; spaces MB size/used: ${spaces}`);
}

const etcd = new EtcdCluster(26080, 1);
const host = new FleetHost('lb-1', 'idlemem');
await etcd.start();
const store = new EtcdStore({ fleet: 'idlemem', endpoints: etcd.endpoints.split(','), dialTimeoutMs: 5000 });
try {
  await push(store, { text: config(26096), file: 'idle.yaml' });
  host.start(etcd.endpoints, 'idlemem', ['--lease-ttl', '10'], env);
  await measure('fleet host (run --etcd, lease TTL 10 s, leader)', host.child!);
  await host.kill('SIGTERM');
  writeFileSync(join(dir, 'elastic.yaml'), config(26097));
  const run = spawn(process.execPath, [BIN, 'run', '-c', join(dir, 'elastic.yaml')], { env: { ...env, ...host.env, CI: 'true' }, stdio: 'ignore' });
  await measure('run -c, the same config', run);
  run.kill('SIGTERM');
  await new Promise((r) => run.once('exit', r));
  console.log(`load average: ${readFileSync('/proc/loadavg', 'utf8').trim()}${env.NODE_OPTIONS.includes('semi') ? ` (NODE_OPTIONS=${process.env.FLEET_NODE_OPTIONS})` : ''}`);
} finally {
  await store.close();
  await host.cleanup();
  const d = defaultPaths('run-idlemem', 'haproxy', host.env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  await etcd.stop();
}
