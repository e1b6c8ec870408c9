import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, elastic } from './cli.js';
import { waitFor } from './docker.js';
import { LineReader } from './lines.js';
import { ownedStateDir } from './owned.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import type { FleetStatus } from '../../src/engine/fleet/status.js';

/**
 * Fleet hosts for tests: `elastic run --etcd --fleet --host` daemons of the built binary, each
 * with its own state and run directory (so its own HAProxy instance), spawned and killed by pid;
 * and tiny HTTP backends that answer with their name.
 */
export class FleetHost {
  readonly stateDir = ownedStateDir('fleet-state-');
  readonly runDir = mkdtempSync(join(tmpdir(), 'fleet-run-'));
  child: ChildProcess | null = null;
  err: LineReader | null = null;

  constructor(
    readonly name: string,
    readonly configName: string,
  ) {}

  get env() {
    return { ELASTIC_STATE_DIR: this.stateDir, ELASTIC_RUN_DIR: this.runDir };
  }

  start(endpoints: string, fleet: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): void {
    const ttl = extra.includes('--lease-ttl') ? [] : ['--lease-ttl', '3']; // short for tests unless given
    this.child = spawn(process.execPath, [BIN, 'run', '--etcd', endpoints, '--fleet', fleet, '--host', this.name, ...ttl, '--log-json', ...extra], {
      env: { ...process.env, ...this.env, CI: 'true', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.err = new LineReader(this.child.stderr!);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await gone;
  }

  /** Kill the daemon and stop the HAProxy it left serving (by its pid file), remove its dirs. */
  async cleanup(): Promise<void> {
    await this.kill();
    const d = defaultPaths(`run-${this.configName}`, 'haproxy', this.env);
    await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
    for (const p of [this.stateDir, this.runDir]) rmSync(p, { recursive: true, force: true });
  }
}

/**
 * A backend answering `body`, closing every connection: HAProxy keeps reusing a pooled idle
 * connection to a slot's old address after a runtime-API change (docs/BENCHMARKS.md, fleet), a
 * render-applier finding these fleet tests must not depend on.
 */
export async function startBackend(port: number, body: string): Promise<Server> {
  const s = createServer((_req, res) => res.setHeader('connection', 'close').end(body));
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve());
  });
  return s;
}

export async function fleetStatus(endpoints: string, fleet: string): Promise<FleetStatus> {
  const r = await elastic(['cluster', 'status', '--etcd', endpoints, '--fleet', fleet, '--json']);
  if (r.exitCode !== 0) throw new Error(`cluster status exit ${r.exitCode}: ${r.stdout} ${r.stderr}`);
  return JSON.parse(String(r.stdout)) as FleetStatus;
}

/** Wait until `cluster status` names a leader other than `old`; its name. */
export async function leaderOtherThan(endpoints: string, fleet: string, old: string, what: string, timeoutMs: number, everyMs = 100): Promise<string> {
  return (await waitFor(async () => {
    const l = (await fleetStatus(endpoints, fleet)).leader;
    return l && l !== old ? l : null;
  }, what, timeoutMs, everyMs))!;
}

/** What a host's HAProxy answers on `port` (the backend's name), or ERR. */
export async function answer(port: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000), headers: { connection: 'close' } });
    return (await res.text()).trim();
  } catch {
    return 'ERR';
  }
}

export interface HostPorts {
  readonly name: string;
  readonly haproxy: number;
  readonly metrics: number;
}

/**
 * A fleet file for tests: one static backend served by HAProxy on `port`, and per host (hosts:)
 * its own HAProxy and metrics ports; `webExtra[host]` is appended to that host's web override.
 */
export function fleetConfig(name: string, port: number, backend: number, hosts: readonly HostPorts[], webExtra: Record<string, string> = {}): string {
  return `version: 1
name: ${name}
sources:
  web:
    static: { backends: ["127.0.0.1:${backend}"] }
services:
  - name: web
    sources: [web]
    guardrails: { min_backends: 1, max_change: 100 }
    haproxy: { port: ${port}, mode: http }
sync: { min_interval_ms: 50 }
hosts:
${hosts.map((h) => `  ${h.name}:\n    services:\n      web: { haproxy: { port: ${h.haproxy} }${webExtra[h.name] ?? ''} }\n    metrics: { prometheus: { port: ${h.metrics} } }`).join('\n')}
`;
}

/** Wait until `cluster status` shows `count` hosts, all alive and converged on `version`. */
export async function converged(endpoints: string, fleet: string, count: number, version: number, timeoutMs = 20_000): Promise<FleetStatus> {
  const end = Date.now() + timeoutMs;
  let last: FleetStatus | null = null;
  while (Date.now() < end) {
    last = await fleetStatus(endpoints, fleet).catch(() => null);
    if (last && last.version === version && last.hosts.length === count && last.hosts.every((h) => h.alive && h.converged)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${count} hosts converged on version ${version}; last status: ${JSON.stringify(last)}`);
}

/** afterAll of a fleet test: every host (daemon + its HAProxy), backend, the etcd cluster, temp dirs. */
export async function teardownFleet(hosts: readonly FleetHost[], servers: ReadonlyArray<Server | undefined>, etcd: { stop(): Promise<void> }, dirs: readonly string[]): Promise<void> {
  for (const h of hosts) {
    if (h.child?.pid) h.child.kill('SIGCONT'); // a test may have stopped it
    await h.cleanup();
  }
  for (const s of servers) s?.close();
  await etcd.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
