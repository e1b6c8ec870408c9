import { execa } from 'execa';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';
import { sleep } from '../../runtime/clock.js';
import { reloadPlan, type Applier, type ApplyOutcome, type ApplyPlan, type DesiredRender } from '../applier.js';
import type { HaproxyApplied } from '../haproxy/plan.js';
import { parseProcStat, pidAlive } from '../../runtime/pid.js';
import { endNginxOrphans, nginxOrphans } from './orphans.js';
import { lowerFlag, raiseFlag } from './flag.js';
import { clientConns, httpListenPorts, TURNOVER_MAX_MS, waitTurnover } from './turnover.js';
import { nullLogger, type Logger } from '../../runtime/logger.js';

/**
 * nginx: graceful reload (`nginx -s reload`), then proof that the new config is in force: the
 * master starts new workers only when it accepted the config, so we wait for a worker pid that
 * was not there before, then for every old worker to have closed its listening sockets (title
 * "worker process is shutting down", or gone): from then on every new connection gets the new
 * config. A config nginx -t accepts but the master cannot load (a port taken) leaves the old
 * workers alone and fails verification here.
 *
 * Keep-alive clients: an old worker closes its idle keep-alive connections the moment it shuts
 * down, and a client that writes its next request into one at that moment gets a reset (nginx
 * before 1.27.4 has no keepalive_min_timeout). So before a reload we create the closing flag
 * the template tests (`if (-f flag)`): from then on every response says "Connection: close" and
 * busy clients reconnect. The reload waits until every connection open when the flag went up
 * has turned over (closed, or quiet: turnover.ts), so only clients idle for a while are still
 * connected when the old worker quits. The flag goes once the new workers serve.
 */
export interface NginxApplierOptions {
  config: string;
  pidFile: string;
  errorLog: string;
  manage: boolean;
  /** File whose existence makes every response "Connection: close" (see above). */
  closingFlag: string;
  bin?: string;
  logger?: Logger;
}

/** The lead before a reload when `ss` cannot list the connections (turnover.ts): longer than a request stuck on a vanished backend (proxy_connect_timeout 2s). */
export const FIXED_LEAD_MS = 2300;

export async function childPids(parent: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (parseProcStat(await readFile(`/proc/${name}/stat`, 'utf8'))?.ppid === parent) out.push(Number(name));
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
    this.paths = { pidFile: opts.pidFile, errorLog: opts.errorLog, closingFlag: opts.closingFlag };
    this.bin = opts.bin ?? 'nginx';
  }

  plan(last: HaproxyApplied | undefined, desired: DesiredRender): ApplyPlan {
    return reloadPlan(last, desired);
  }

  /** The pid our pid file records (the master, alive or not), or null. */
  private async recordedPid(): Promise<number | null> {
    const n = Number((await readFile(this.opts.pidFile, 'utf8').catch(() => '')).trim());
    return Number.isInteger(n) && n > 1 ? n : null;
  }

  async masterPid(): Promise<number | null> {
    const n = await this.recordedPid();
    return n !== null && pidAlive(n) ? n : null;
  }

  async alive(): Promise<boolean> {
    return (await this.masterPid()) !== null;
  }

  /** The master; when it died (kill -9), its orphaned workers: their listening sockets are ours too. */
  async owners(): Promise<readonly number[]> {
    const pid = await this.recordedPid();
    if (pid === null) return [];
    return pidAlive(pid) ? [pid] : (await nginxOrphans(pid)).map((o) => o.pid);
  }

  /** Workers our dead master left behind hold the ports and serve the old config: end them first. */
  private async endOrphans(): Promise<void> {
    const master = await this.recordedPid();
    if (master === null) return;
    const { ended, left } = await endNginxOrphans(master);
    if (ended.length > 0) (this.opts.logger ?? nullLogger).warn(`nginx master ${master} is gone; ended its orphaned workers (pids ${ended.map((o) => o.pid).join(', ')}) before starting nginx`);
    if (left.length > 0) throw new UserError(`orphaned workers of nginx master ${master} did not exit (pids ${left.join(', ')})`, 'end them by hand (kill -9), then run render again', ExitCode.unavailable);
  }

  async start(): Promise<void> {
    await this.endOrphans();
    await lowerFlag(this.opts.closingFlag); // left by a render killed during a reload
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

  async apply(plan: ApplyPlan, desired: DesiredRender): Promise<ApplyOutcome> {
    return this.applyConfig(plan, httpListenPorts(desired.text));
  }

  private async applyConfig(plan: ApplyPlan, ports: readonly number[]): Promise<ApplyOutcome> {
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
    await raiseFlag(this.opts.closingFlag);
    try {
      await this.warnIfFlagHidden(before);
      await this.awaitTurnover(ports);
      return await this.reload(pid, before, plan, done);
    } finally {
      await lowerFlag(this.opts.closingFlag);
    }
  }

  /** With the flag up: wait until the connections open now have turned over (turnover.ts). */
  private async awaitTurnover(ports: readonly number[]): Promise<void> {
    const open0 = await clientConns(ports);
    if (open0 === null) {
      (this.opts.logger ?? nullLogger).debug(`ss cannot list nginx's connections: waiting a fixed ${FIXED_LEAD_MS} ms before the reload`);
      await sleep(FIXED_LEAD_MS);
      return;
    }
    const busy = await waitTurnover(ports, open0);
    if (busy.length > 0) (this.opts.logger ?? nullLogger).warn(`${busy.length} keep-alive connection(s) still had a request in progress after ${TURNOVER_MAX_MS / 1000} s; reloading anyway (their clients may see the connection close)`);
  }

  private flagChecked = false;

  /** Workers run as another user (nobody): if they cannot search the flag's directory, say so once. */
  private async warnIfFlagHidden(workers: ReadonlySet<number>): Promise<void> {
    if (this.flagChecked) return;
    const w = [...workers][0];
    if (w === undefined) return;
    this.flagChecked = true;
    const status = await readFile(`/proc/${w}/status`, 'utf8').catch(() => '');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    const gid = Number(/^Gid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    if (uid < 0 || uid === 0) return;
    const hidden = await firstUnsearchable(dirname(this.opts.closingFlag), uid, gid);
    if (hidden) (this.opts.logger ?? nullLogger).warn(`nginx workers (uid ${uid}) cannot search ${hidden}: reloads may reset keep-alive connections that are in use`, { hint: 'put --output in a directory nginx workers can search (e.g. /etc/nginx), see docs/render.md' });
  }

  private async reload(pid: number, before: ReadonlySet<number>, plan: ApplyPlan, done: (action: ApplyOutcome['action'], reason: string) => ApplyOutcome): Promise<ApplyOutcome> {
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

/** The first directory on the way to `dir` that uid/gid may not search (x bit), or null. */
export async function firstUnsearchable(dir: string, uid: number, gid: number): Promise<string | null> {
  const parts = dir.split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const d = `/${parts.slice(0, i).join('/')}`;
    const st = await stat(d).catch(() => null);
    if (!st) return d;
    const bit = st.uid === uid ? 0o100 : st.gid === gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return d;
  }
  return null;
}
