import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * A real etcd cluster for a test: 1 or 3 members on loopback ports of the test's own (member i:
 * client base+2i, peer base+2i+1), each with its own data dir in a temp dir, started here and
 * killed by pid. etcd 3.4 binds its default ports (2379/2380) for any URL left out, so every one
 * is given.
 */
export class EtcdCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'fleet-etcd-'));
  readonly members: Array<{ name: string; client: number; peer: number; child: ChildProcess | null }>;

  constructor(
    readonly basePort: number,
    size: 1 | 3 = 1,
    /** Clients over TLS with client certificates (PEM file paths); `ctl` uses `client`. */
    readonly tls?: { ca: string; cert: string; key: string; client: { cert: string; key: string } },
  ) {
    this.members = Array.from({ length: size }, (_, i) => ({ name: `m${i + 1}`, client: basePort + 2 * i, peer: basePort + 2 * i + 1, child: null }));
  }

  get endpoints(): string {
    return this.members.map((m) => `${this.scheme}://127.0.0.1:${m.client}`).join(',');
  }

  private get scheme(): string {
    return this.tls ? 'https' : 'http';
  }

  async start(): Promise<void> {
    const taken = await listening(this.members.flatMap((m) => [m.client, m.peer]));
    if (taken.length) throw new Error(`etcd test ports already in use: ${taken.join(', ')}`);
    for (const m of this.members) this.startMember(m.name, 'new');
    await this.waitHealthy();
  }

  /** (Re)start one member on its existing data dir. */
  startMember(name: string, state: 'new' | 'existing' = 'existing'): void {
    const m = this.members.find((x) => x.name === name)!;
    const cluster = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peer}`).join(',');
    const log = openSync(join(this.dir, `${name}.log`), 'a');
    m.child = spawn(
      'etcd',
      [
        '--name', name,
        '--data-dir', join(this.dir, name),
        '--listen-client-urls', `${this.scheme}://127.0.0.1:${m.client}`,
        '--advertise-client-urls', `${this.scheme}://127.0.0.1:${m.client}`,
        ...(this.tls ? ['--cert-file', this.tls.cert, '--key-file', this.tls.key, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'] : []),
        '--listen-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-cluster', cluster,
        '--initial-cluster-state', state,
        '--initial-cluster-token', `t${process.pid}-${this.basePort}`,
        '--heartbeat-interval', '100',
        '--election-timeout', '1000',
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
  }

  /** SIGKILL one member (by the pid we started). */
  async killMember(name: string): Promise<void> {
    const m = this.members.find((x) => x.name === name)!;
    const c = m.child;
    m.child = null;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }

  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < until) {
      const r = await this.ctl(['endpoint', 'health']);
      if (r.exitCode === 0) return;
      last = `${r.stdout}\n${r.stderr}`;
      await new Promise((r2) => setTimeout(r2, 200));
    }
    throw new Error(`etcd did not become healthy: ${last}`);
  }

  /** etcdctl against this cluster (tests read and write raw keys with it). */
  ctl(args: string[]) {
    const tls = this.tls ? ['--cacert', this.tls.ca, '--cert', this.tls.client.cert, '--key', this.tls.client.key] : [];
    return execa('etcdctl', ['--endpoints', this.endpoints, ...tls, ...args], { reject: false, env: { ETCDCTL_API: '3' }, timeout: 10_000 });
  }

  async stop(): Promise<void> {
    for (const m of this.members) await this.killMember(m.name);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Which of `ports` some process listens on now (the kernel's view, not ours). */
export async function listening(ports: readonly number[]): Promise<number[]> {
  const r = await execa('ss', ['-Hltn'], { reject: false });
  const held = new Set(r.stdout.split('\n').map((l) => Number(/:(\d+)\s/.exec(l.split(/\s+/).slice(3, 4).join('') + ' ')?.[1])));
  return ports.filter((p) => held.has(p));
}
