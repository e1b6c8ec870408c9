import { execa } from 'execa';
import { readFile, rm } from 'node:fs/promises';
import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';
import { sleep } from '../../runtime/clock.js';
import { sendCommand } from './runtime.js';
import { pidAlive } from '../../runtime/pid.js';

/**
 * The HAProxy process in master-worker mode: start it (daemonised, so it outlives `render`),
 * reload it seamlessly through the master CLI (listeners are handed to the new worker), and tell
 * whether it is alive. We only ever signal the pid from our own pidfile.
 */
export interface HaproxyProcessOptions {
  config: string;
  masterSocket: string;
  pidFile: string;
  bin?: string;
}

export interface ProcInfo {
  masterPid: number;
  reloads: number;
  failed: number;
  /** Current workers (reload count 0 = started by the last reload). */
  workers: Array<{ pid: number; reloads: number }>;
  /** Workers of earlier configs still finishing their connections (until hard-stop-after). */
  oldWorkers: Array<{ pid: number; reloads: number }>;
}

/** Parse the master CLI's `show proc`. */
export function parseShowProc(text: string): ProcInfo | null {
  let section = '';
  const info: ProcInfo = { masterPid: 0, reloads: 0, failed: 0, workers: [], oldWorkers: [] };
  for (const line of text.split('\n')) {
    if (line.startsWith('# workers')) section = 'workers';
    else if (line.startsWith('# old workers')) section = 'old';
    else if (line.startsWith('#')) section = line.startsWith('#<PID>') ? 'master' : 'other';
    else {
      const m = /^(\d+)\s+(\w+)\s+(\d+)(?:\s+\[failed: (\d+)\])?/.exec(line.trim());
      if (!m) continue;
      if (m[2] === 'master') Object.assign(info, { masterPid: Number(m[1]), reloads: Number(m[3]), failed: Number(m[4] ?? 0) });
      else if (m[2] === 'worker' && (section === 'workers' || section === 'old')) info[section === 'old' ? 'oldWorkers' : 'workers'].push({ pid: Number(m[1]), reloads: Number(m[3]) });
    }
  }
  return info.masterPid ? info : null;
}

export class HaproxyProcess {
  constructor(readonly opts: HaproxyProcessOptions) {}

  async showProc(timeoutMs = 2000): Promise<ProcInfo | null> {
    try {
      return parseShowProc(await sendCommand(this.opts.masterSocket, 'show proc', timeoutMs));
    } catch {
      return null;
    }
  }

  async pid(): Promise<number | null> {
    try {
      const n = Number((await readFile(this.opts.pidFile, 'utf8')).trim().split('\n')[0]);
      return Number.isInteger(n) && n > 1 ? n : null;
    } catch {
      return null;
    }
  }

  /** The master answers on its socket (the pid in the pidfile alone could be recycled). */
  async alive(): Promise<boolean> {
    const pid = await this.pid();
    if (pid === null || !pidAlive(pid)) return false;
    return (await this.showProc())?.masterPid === pid;
  }

  /** Start HAProxy daemonised in master-worker mode; resolves when a worker serves. */
  async start(timeoutMs = 10_000): Promise<ProcInfo> {
    await rm(this.opts.masterSocket, { force: true });
    const bin = this.opts.bin ?? 'haproxy';
    const r = await execa(bin, ['-W', '-D', '-S', `${this.opts.masterSocket},mode,600`, '-f', this.opts.config, '-p', this.opts.pidFile], {
      reject: false,
      timeout: 30_000,
      stdin: 'ignore',
      all: true,
    });
    if (r.exitCode !== 0) {
      const out = String(r.all ?? '').split('\n').find((l) => l.includes('[ALERT]')) ?? String(r.all ?? r.shortMessage ?? '');
      throw new UserError(`haproxy did not start: ${printable(out.trim(), 240)}`, 'check that the bind ports are free and the config is valid (render --check)', ExitCode.unavailable);
    }
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const info = await this.showProc();
      if (info && info.workers.length > 0) return info;
      await sleep(25);
    }
    throw new UserError(`haproxy started but its master socket ${this.opts.masterSocket} does not answer`, 'look at the haproxy logs', ExitCode.unavailable);
  }

  /**
   * Seamless reload through the master CLI, verified: the master's reload counter moves, the
   * failure counter does not, and a new worker is running.
   */
  async reload(timeoutMs = 15_000): Promise<ProcInfo> {
    const before = await this.showProc();
    if (!before) throw new UserError(`haproxy master socket ${this.opts.masterSocket} does not answer`, 'is HAProxy running in master-worker mode (-W -S)? render --start starts it', ExitCode.unavailable);
    const old = new Set(before.workers.map((w) => w.pid));
    await sendCommand(this.opts.masterSocket, 'reload', 5000).catch(() => ''); // the master re-executes and drops us
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      await sleep(20);
      const now = await this.showProc(1000);
      if (!now || now.reloads <= before.reloads) continue;
      if (now.failed > before.failed) {
        throw new UserError('haproxy reload failed (the master kept the old workers)', 'check the config with render --check and the haproxy logs', ExitCode.refused);
      }
      if (now.workers.some((w) => !old.has(w.pid) && w.reloads === 0)) return now;
    }
    throw new UserError(`haproxy did not finish reloading within ${timeoutMs} ms`, 'look at the haproxy logs', ExitCode.unavailable);
  }

  /** Stop HAProxy (only the master from our pidfile; it stops its workers). */
  async stop(timeoutMs = 5000): Promise<void> {
    const pid = await this.pid();
    if (pid === null || !pidAlive(pid)) return;
    process.kill(pid, 'SIGUSR1'); // soft stop: finish in-flight requests
    const end = Date.now() + timeoutMs;
    while (Date.now() < end && pidAlive(pid)) await sleep(25);
    if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
  }
}

