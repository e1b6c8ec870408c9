import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { execa } from 'execa';
import { TEST_IMAGE, docker as mainDocker, waitFor } from './docker.js';

/**
 * A second, private dockerd for tests that stop and restart the daemon: the shared one keeps
 * serving every other test. It makes no iptables changes (--iptables=false) and uses a bridge of
 * its own (elastic-tb0, 198.19.250.1/24) that this helper creates and deletes. Never start a
 * dockerd with --bridge=none here: it deletes the host's docker0. Stopped by its own pid.
 */
const BRIDGE = 'elastic-tb0';
export class PrivateDockerd {
  dir = '';
  proc: ChildProcess | null = null;
  get socket(): string {
    return join(this.dir, 'docker.sock');
  }
  get host(): string {
    return `unix://${this.socket}`;
  }
  client(): Docker {
    return new Docker({ socketPath: this.socket });
  }

  async start(): Promise<void> {
    if (!this.dir) this.dir = await mkdtemp(join(tmpdir(), 'elastic-dockerd-'));
    const link = await execa('ip', ['link', 'show', BRIDGE], { reject: false });
    if (link.exitCode !== 0) {
      await execa('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
      await execa('ip', ['addr', 'add', '198.19.250.1/24', 'dev', BRIDGE]);
      await execa('ip', ['link', 'set', BRIDGE, 'up']);
    }
    const log = openSync(join(this.dir, 'dockerd.log'), 'a');
    this.proc = spawn(
      'dockerd',
      [
        '--host', this.host,
        '--data-root', join(this.dir, 'data'),
        '--exec-root', join(this.dir, 'exec'),
        '--pidfile', join(this.dir, 'docker.pid'),
        '--iptables=false', '--ip-masq=false', '--bridge', BRIDGE,
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    await waitFor(() => this.client().ping().then(() => true), 'the private dockerd to answer', 30_000, 100);
  }

  /** Load the test image from the main daemon (no registry here). */
  async prepare(): Promise<void> {
    const d = this.client();
    const exported = await mainDocker.getImage(TEST_IMAGE).get();
    await new Promise<void>((resolve, reject) => {
      d.loadImage(exported, {}, (err, stream) => {
        if (err || !stream) return reject(err);
        d.modem.followProgress(stream, (e) => (e ? reject(e) : resolve()));
      });
    });
  }

  /**
   * Stop the daemon. SIGTERM is a clean stop (the restart test uses it: after a SIGKILL, this
   * dockerd's orphaned containerd blocks the next start for a long time).
   */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
    this.proc = null;
  }

  /** Remove everything: containers, the network, the daemon, its files. */
  async destroy(): Promise<void> {
    if (this.proc) {
      try {
        const d = this.client();
        for (const c of await d.listContainers({ all: true })) await d.getContainer(c.Id).remove({ force: true });
      } catch {
        /* daemon already gone */
      }
      await this.kill('SIGTERM');
    }
    await execa('ip', ['link', 'del', BRIDGE], { reject: false });
    if (!this.dir) return;
    // Processes and mounts this daemon left under its own directory, and only those.
    await execa('pkill', ['-f', `containerd.*${this.dir}`], { reject: false });
    const mounts = (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(this.dir))
      .sort()
      .reverse();
    for (const m of mounts) await execa('umount', ['-l', m], { reject: false });
    await rm(this.dir, { recursive: true, force: true }).catch(() => {});
  }
}
