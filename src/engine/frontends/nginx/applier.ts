import { execa } from 'execa';
import { readdir, readFile } from 'node:fs/promises';
import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';
import { sleep } from '../../runtime/clock.js';
import { reloadPlan, type Applier, type ApplyOutcome, type ApplyPlan, type DesiredRender } from '../applier.js';
import type { HaproxyApplied } from '../haproxy/plan.js';
import { pidAlive } from '../../runtime/pid.js';

/**
 * nginx: graceful reload (`nginx -s reload`), then proof that the new config is in force: the
 * master starts new workers only when it accepted the config, so we wait for a worker pid that
 * was not there before, then for every old worker to have closed its listening sockets (title
 * "worker process is shutting down", or gone): from then on every new connection gets the new
 * config. A config nginx -t accepts but the master cannot load (a port taken) leaves the old
 * workers alone and fails verification here.
 */
export interface NginxApplierOptions {
  config: string;
  pidFile: string;
  errorLog: string;
  manage: boolean;
  bin?: string;
}

export async function childPids(parent: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * True when none of these workers still accepts: each has left the master (exited; a pid reused
 * since is not the master's child) or begun its graceful shutdown, whose title nginx sets as it
 * closes its listening sockets ("worker process is shutting down").
 */
async function allRetired(master: number, workers: ReadonlySet<number>): Promise<boolean> {
  for (const w of await childPids(master)) {
    if (!workers.has(w)) continue;
    const title = await readFile(`/proc/${w}/cmdline`, 'utf8').catch(() => '');
    if (title !== '' && !title.includes('shutting down')) return false;
  }
  return true;
}

export class NginxApplier implements Applier {
  readonly proxy = 'nginx' as const;
  readonly paths: Readonly<Record<string, string>>;
  private readonly bin: string;

  constructor(private readonly opts: NginxApplierOptions) {
    this.paths = { pidFile: opts.pidFile, errorLog: opts.errorLog };
    this.bin = opts.bin ?? 'nginx';
  }

  plan(last: HaproxyApplied | undefined, desired: DesiredRender): ApplyPlan {
    return reloadPlan(last, desired);
  }

  async masterPid(): Promise<number | null> {
    try {
      const n = Number((await readFile(this.opts.pidFile, 'utf8')).trim());
      return Number.isInteger(n) && n > 1 && pidAlive(n) ? n : null;
    } catch {
      return null;
    }
  }

  async alive(): Promise<boolean> {
    return (await this.masterPid()) !== null;
  }

  async owners(): Promise<readonly number[]> {
    const pid = await this.masterPid();
    return pid === null ? [] : [pid];
  }

  async start(): Promise<void> {
    const r = await execa(this.bin, ['-c', this.opts.config], { reject: false, stdin: 'ignore', all: true, timeout: 30_000 });
    if (r.exitCode !== 0) throw new UserError(`nginx did not start: ${printable(String(r.all ?? '').trim().split('\n')[0] ?? '', 200)}`, 'check that the listen ports are free', ExitCode.unavailable);
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      const pid = await this.masterPid();
      if (pid && (await childPids(pid)).length > 0) return;
      await sleep(25);
    }
    throw new UserError('nginx started but no worker appeared', `look at ${this.opts.errorLog}`, ExitCode.unavailable);
  }

  async apply(plan: ApplyPlan, _desired: DesiredRender): Promise<ApplyOutcome> {
    const t0 = performance.now();
    const done = (action: ApplyOutcome['action'], reason: string): ApplyOutcome => ({ action, ops: 0, reason, ms: Math.round(performance.now() - t0) });
    const pid = await this.masterPid();
    if (pid === null) {
      if (!this.opts.manage) throw new UserError(`nginx is not running (no live pid in ${this.opts.pidFile})`, 'start it, or pass --start', ExitCode.unavailable);
      await this.start();
      return done('start', 'nginx was not running: started');
    }
    if (plan.action === 'none') return done('none', plan.reason);
    const before = new Set(await childPids(pid));
    const r = await execa(this.bin, ['-c', this.opts.config, '-s', 'reload'], { reject: false, stdin: 'ignore', all: true, timeout: 30_000 });
    if (r.exitCode !== 0) throw new UserError(`nginx -s reload failed: ${printable(String(r.all ?? '').trim().split('\n')[0] ?? '', 200)}`, `look at ${this.opts.errorLog}`, ExitCode.refused);
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      if ((await childPids(pid)).some((c) => !before.has(c))) {
        // New workers serve the new config, but until each old worker has taken its QUIT it
        // still accepts on the shared listen sockets: wait for them to stop accepting too.
        while (Date.now() < end && !(await allRetired(pid, before))) await sleep(10);
        return done('reload', plan.reason);
      }
      await sleep(20);
    }
    throw new UserError('nginx did not load the new config (no new worker after reload)', `look at ${this.opts.errorLog} (a listen port in use?)`, ExitCode.refused);
  }
}
