/**
 * Chaos soak of `elastic run` (issue 12): is the daemon trustworthy while everything around it
 * goes wrong? One daemon (the built binary) serves three services from Docker containers:
 *   steady  HAProxy 127.0.0.1:STEADY and kernel DNAT 198.18.0.1:KERNEL   (never touched by the chaos)
 *   churn   HAProxy 127.0.0.1:CHURN, tcp health checks                   (its containers churn)
 * Every 1-3 s one random action: a valid SIGHUP (a changed health interval), an invalid SIGHUP
 * (a YAML error or a reference to a missing source, restored after), a SIGHUP adding a bind on a
 * port this process holds, an ELB API CreateLoadBalancer on that taken port (must be refused) or
 * on a free one (then deleted), container churn (docker stop/start), kill -9 of the daemon and a
 * restart (as systemd's Restart=always would), or a "follow" check: `docker kill` one churn
 * container and time until the daemon's status socket no longer serves it.
 * Meanwhile bounded clients (a new connection per request) load both steady paths and count
 * failures (goal: 0), every state file is parsed every 2 s (goal: always valid), and the
 * daemon's RSS and fds are sampled (goal: flat).
 *
 *   npx tsx bench/run/chaos.ts [seconds=600]        (CHAOS_ACTIONS=a,b to run only some actions)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { CreateLoadBalancerCommand, DeleteLoadBalancerCommand, ElasticLoadBalancingClient } from '@aws-sdk/client-elastic-load-balancing';
import { BIN } from '../../test/support/cli.js';
import { docker, requireDocker, TestContainers } from '../../test/support/docker.js';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { percentile } from '../stats.js';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';

const SECONDS = Math.min(3600, Math.max(20, Number(process.argv[2] ?? 600)));
const P = { steady: 18891, churn: 18892, kernel: 18893, metrics: 18894, api: 18895, taken: 18896, free: 18897 };
const KEY = { accessKeyId: 'AKIDCHAOSBENCH0001', secretAccessKey: 'chaos-bench-secret-0123456789abcdef' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

await requireDocker();
const tc = new TestContainers();
const dir = mkdtempSync(join(tmpdir(), 'chaos-'));
const env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
const file = join(dir, 'elastic.yaml');

const config = (o: { interval?: number; extraPort?: number; broken?: 'yaml' | 'ref' } = {}) => `version: 1
name: chaos
sources:
  steady:
    docker: { label: ["elastic.test=${tc.runId}", "chaos=steady"], port: 80 }
  churn:
    docker: { label: ["elastic.test=${tc.runId}", "chaos=churn"], port: 80 }
services:
  - name: steady
    sources: [steady]
    haproxy: { port: ${P.steady}, mode: http }
    map_image: { port: ${P.kernel}, dataplane: nft }
  - name: churn
    sources: [${o.broken === 'ref' ? 'nope' : 'churn'}]
    health: { check: tcp, interval_ms: ${o.interval ?? 500}, rise: 1, fall: 1 }
    guardrails: { min_backends: 0, max_change: 100 }
    haproxy: { port: ${P.churn}, mode: http }
${o.extraPort ? `  - name: extra\n    sources: [churn]\n    haproxy: { port: ${o.extraPort}, mode: http }\n` : ''}sync: { min_interval_ms: 100 }
metrics:
  prometheus: { port: ${P.metrics} }
api:
  port: ${P.api}
  keys: [{ access_key_id: ${KEY.accessKeyId}, secret_env: CHAOS_ELB_SECRET }]
${o.broken === 'yaml' ? 'services: [ {\n' : ''}`;

let daemon: ChildProcess | undefined;
let spawnedAt = 0;
const exits: string[] = [];
function startDaemon(): void {
  const child = spawn(process.execPath, [BIN, 'run', '-c', file, '--log-json'], { env: { ...process.env, ...env, CI: 'true', CHAOS_ELB_SECRET: KEY.secretAccessKey }, stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr!.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-2000);
    if (process.env.CHAOS_LOG) appendFileSync(process.env.CHAOS_LOG, d); // CHAOS_LOG=FILE keeps the daemon's log
  });
  child.on('exit', (code, signal) => {
    if (signal !== 'SIGKILL' && signal !== 'SIGTERM') exits.push(`exit ${code ?? signal}: ${tail.split('\n').slice(-3).join(' | ')}`);
    if (daemon === child) setTimeout(() => running && startDaemon(), 500); // systemd Restart=always
  });
  daemon = child;
  spawnedAt = Date.now();
}

interface Stats { ok: number; failed: number; slow: number; ms: number[]; errors: Record<string, number> }
const load: Record<string, Stats> = {};
function once(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/id', agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
  });
}
async function client(name: string, host: string, port: number, until: number): Promise<void> {
  const s = (load[name] ??= { ok: 0, failed: 0, slow: 0, ms: [], errors: {} });
  while (Date.now() < until) {
    const t0 = performance.now();
    const err = await once(host, port);
    const ms = performance.now() - t0;
    s.ms.push(ms);
    if (ms > 1000) s.slow++;
    if (err) {
      s.failed++;
      s.errors[err] = (s.errors[err] ?? 0) + 1;
    } else s.ok++;
    await sleep(5);
  }
}

function parseStateDir(d: string): string[] {
  const bad: string[] = [];
  const walk = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const f = join(p, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.json') && !e.name.startsWith('.')) {
        try {
          JSON.parse(readFileSync(f, 'utf8'));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') bad.push(`${f}: ${(err as Error).message}`);
        }
      }
    }
  };
  try {
    walk(d);
  } catch {
    /* not made yet */
  }
  return bad;
}

async function served(service: string): Promise<string[] | undefined> {
  try {
    const snap = (await requestStatus(join(env.ELASTIC_RUN_DIR, 'run.chaos.sock'), { op: 'snapshot' }, 2000)) as { services?: Record<string, { backends?: { address: string }[] }> };
    return snap.services?.[service]?.backends?.map((b) => b.address);
  } catch {
    return undefined;
  }
}

const elb = new ElasticLoadBalancingClient({ endpoint: `http://127.0.0.1:${P.api}`, region: 'us-east-1', credentials: KEY, maxAttempts: 1 });
const holder = net.createServer((s) => s.destroy());
await new Promise<void>((r) => holder.listen(P.taken, '127.0.0.1', () => r()));
let running = true;
const counts: Record<string, number> = {};
const follow: number[] = [];
const followFailed: string[] = [];
const badState: string[] = [];
const samples: { t: number; pid: number; rss: number; fds: number }[] = [];
try {
  const steady = await Promise.all([0, 1, 2].map(() => tc.run({ labels: { chaos: 'steady' } })));
  const churn = await Promise.all([0, 1, 2, 3].map(() => tc.run({ labels: { chaos: 'churn' } })));
  void steady;
  writeFileSync(file, config());
  startDaemon();
  const t0 = Date.now();
  // Load starts once both steady paths answer (the data plane is up); from then on nothing may fail.
  while (((await once('127.0.0.1', P.steady)) || (await once('198.18.0.1', P.kernel))) && Date.now() - t0 < 60_000) await sleep(200);
  const until = Date.now() + SECONDS * 1000;
  const clients = [client('steady haproxy', '127.0.0.1', P.steady, until), client('steady haproxy', '127.0.0.1', P.steady, until), client('steady kernel', '198.18.0.1', P.kernel, until), client('steady kernel', '198.18.0.1', P.kernel, until)];
  const checker = (async () => {
    while (Date.now() < until) {
      badState.push(...parseStateDir(env.ELASTIC_STATE_DIR));
      const pid = daemon?.pid;
      if (pid) {
        try {
          const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
          samples.push({ t: Math.round((Date.now() - t0) / 1000), pid, rss, fds: readdirSync(`/proc/${pid}/fd`).length });
        } catch {
          /* restarting */
        }
      }
      await sleep(2000);
    }
  })();
  const all = ['hup-valid', 'hup-invalid', 'hup-taken', 'api-taken', 'api-free', 'churn', 'churn', 'kill9', 'follow', 'follow'] as const;
  // CHAOS_ACTIONS=follow,kill9 narrows the chaos to some actions (to study one failure).
  const only = process.env.CHAOS_ACTIONS?.split(',');
  const actions = only ? all.filter((a) => only.includes(a)) : all;
  while (Date.now() < until - 5000) {
    const a = pick(actions);
    counts[a] = (counts[a] ?? 0) + 1;
    try {
      if (a === 'hup-valid') {
        writeFileSync(file, config({ interval: pick([400, 500, 600]) }));
        daemon?.kill('SIGHUP');
      } else if (a === 'hup-invalid') {
        writeFileSync(file, config({ broken: pick(['yaml', 'ref'] as const) }));
        daemon?.kill('SIGHUP');
        await sleep(1000);
        writeFileSync(file, config());
      } else if (a === 'hup-taken') {
        writeFileSync(file, config({ extraPort: P.taken }));
        daemon?.kill('SIGHUP');
        await sleep(1500);
        writeFileSync(file, config());
        daemon?.kill('SIGHUP');
      } else if (a === 'api-taken' || a === 'api-free') {
        const port = a === 'api-taken' ? P.taken : P.free;
        const name = `chaos-${port}`;
        const r = await elb.send(new CreateLoadBalancerCommand({ LoadBalancerName: name, Listeners: [{ Protocol: 'HTTP', LoadBalancerPort: port, InstanceProtocol: 'HTTP', InstancePort: 80 }] })).then(() => 'created', (e: Error) => e.name);
        counts[`${a}: ${r}`] = (counts[`${a}: ${r}`] ?? 0) + 1;
        await sleep(1000);
        await elb.send(new DeleteLoadBalancerCommand({ LoadBalancerName: name })).catch(() => {});
      } else if (a === 'churn') {
        const c = pick(churn);
        const info = await c.inspect();
        if (info.State.Running) await c.stop({ t: 2 });
        else await c.start();
      } else if (a === 'kill9') {
        // As systemd would see it: a daemon that has started (3 s up) dies; not one still starting.
        if (Date.now() - spawnedAt > 3000) daemon?.kill('SIGKILL');
      } else if (a === 'follow') {
        const running = [];
        for (const c of churn) if ((await c.inspect()).State.Running) running.push(c);
        if (running.length === 0) continue;
        const c = pick(running);
        const ip = (await c.inspect()).NetworkSettings.Networks.bridge?.IPAddress ?? '';
        const before = await served('churn');
        if (!before?.includes(ip)) continue; // not served yet (health rise) or daemon restarting
        await c.kill();
        const from = performance.now();
        let gone = false;
        while (performance.now() - from < 10_000) {
          const now = await served('churn');
          if (now && !now.includes(ip)) {
            gone = true;
            break;
          }
          await sleep(100);
        }
        if (gone) follow.push(performance.now() - from);
        else followFailed.push(ip);
        await c.start();
      }
    } catch (err) {
      counts[`error: ${(err as Error).message.slice(0, 60)}`] = (counts[`error: ${(err as Error).message.slice(0, 60)}`] ?? 0) + 1;
    }
    await sleep(1000 + Math.random() * 2000);
  }
  await Promise.all([...clients, checker]);

  console.log(`chaos: ${SECONDS} s; actions ${JSON.stringify(counts)}`);
  for (const [name, s] of Object.entries(load)) {
    console.log(`${name}: ${s.ok + s.failed} requests, failed ${s.failed}, over 1 s ${s.slow}, p50 ${percentile(s.ms, 50).toFixed(1)} ms, p99 ${percentile(s.ms, 99).toFixed(1)} ms, errors ${JSON.stringify(s.errors)}`);
  }
  console.log(`follow (docker kill -> gone from the status socket): ${follow.length} checks, p50 ${percentile(follow, 50).toFixed(0)} ms, max ${Math.max(...follow, 0).toFixed(0)} ms; not followed within 10 s: ${followFailed.length}`);
  console.log(`state files that did not parse: ${badState.length}${badState.length ? ` (${[...new Set(badState)].slice(0, 3).join('; ')})` : ''}`);
  console.log(`daemon exits not caused by the chaos: ${exits.length}${exits.length ? `: ${exits.slice(0, 3).join(' || ')}` : ''}`);
  const life = samples.filter((s) => s.pid === samples[samples.length - 1]?.pid);
  console.log(`daemon RSS/fds over its last life (${life.length} samples): RSS ${life[0]?.rss.toFixed(1)} -> ${life[life.length - 1]?.rss.toFixed(1)} MB (max ${Math.max(...samples.map((s) => s.rss)).toFixed(1)}), fds ${life[0]?.fds} -> ${life[life.length - 1]?.fds} (max ${Math.max(...samples.map((s) => s.fds))})`);
} finally {
  running = false;
  const last = daemon;
  daemon = undefined;
  if (last?.pid && last.exitCode === null) {
    last.kill('SIGTERM');
    await new Promise((r) => last.once('exit', r));
  }
  holder.close();
  const d = defaultPaths('run-chaos', 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch((e) => console.error(`HAProxy: ${(e as Error).message}`));
  const stopped = await execa(process.execPath, [BIN, 'map-image', 'stop', '--all'], { reject: false, env: { ...env, CI: 'true' } });
  if (stopped.exitCode !== 0) console.error(`map-image stop --all: ${stopped.stderr}`);
  await tc.cleanup();
  const own = namespaceFor(env.ELASTIC_STATE_DIR).nftTable;
  const left = (await execa('nft', ['list', 'tables'], { reject: false })).stdout.split('\n').filter((l) => l.endsWith(` ${own}`));
  const procs = (await execa('pgrep', ['-f', dir], { reject: false })).stdout.trim();
  console.log(`left after stop: nft tables of elastic namespaces ${left.length ? left.join(', ') : 'none'}; processes of this run ${procs || 'none'}`);
  if (statSync(dir, { throwIfNoEntry: false })) rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
