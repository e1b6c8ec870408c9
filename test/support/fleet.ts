import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, elastic } from './cli.js';
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
    this.child = spawn(process.execPath, [BIN, 'run', '--etcd', endpoints, '--fleet', fleet, '--host', this.name, '--lease-ttl', '3', '--log-json', ...extra], {
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

export async function startBackend(port: number, body: string): Promise<Server> {
  const s = createServer((_req, res) => res.end(body));
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

/** What a host's HAProxy answers on `port` (the backend's name), or ERR. */
export async function answer(port: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000), headers: { connection: 'close' } });
    return (await res.text()).trim();
  } catch {
    return 'ERR';
  }
}
