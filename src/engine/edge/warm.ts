import { execa, type ResultPromise } from 'execa';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import { sleep } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { HaproxyRuntime, parseStat } from '../frontends/haproxy/runtime.js';
import { backendOf, maxconnFor, serverOf, warmConfig, type WarmConfigInput } from './warm-config.js';
import { sweepWarmDirs, WARM_DIR_PREFIX, writeOwner } from './warm-dir.js';

/**
 * The HAProxy of the warm path: a child of the edge (foreground, so it is ours and goes with
 * us), its config in a private directory, membership through its runtime API only. A slot is a
 * `server-template` server: enabled with a node's app address and concurrency, disabled when the
 * node goes. `stats()` reads each route's queue and each slot's current sessions.
 */
export interface SlotStat {
  /** Sessions now and in total, over the slot's servers in every thread's backend. */
  scur: number;
  stot: number;
  /** Sessions now, per thread. */
  threads: number[];
}

export interface RouteStat {
  /** Connections HAProxy queues for the route (all its slots full), per thread. */
  qcur: number[];
  slots: Map<number, SlotStat>;
}

export class WarmPath {
  private child: ResultPromise | null = null;
  private dir = '';
  private runtime: HaproxyRuntime | null = null;
  exited = false;
  threads = 1;
  /** Settles when start() does: runtime commands wait for it (a local node can join before HAProxy is up). */
  private readonly started: Promise<void>;
  private settleStart!: (err?: Error) => void;

  constructor(
    private readonly log: Logger,
    private readonly bin = 'haproxy',
  ) {
    this.started = new Promise<void>((resolve, reject) => (this.settleStart = (err) => (err ? reject(err) : resolve())));
    this.started.catch(() => {});
    this.chain = this.started;
  }

  /** Write the config into a new private directory under `base`, start HAProxy, wait for its socket. */
  async start(base: string, input: Omit<WarmConfigInput, 'statsSocket' | 'maxconn'>): Promise<void> {
    try {
      await this.launch(base, input);
      this.settleStart();
    } catch (err) {
      this.settleStart(err as Error);
      throw err;
    }
  }

  private async launch(base: string, input: Omit<WarmConfigInput, 'statsSocket' | 'maxconn'>): Promise<void> {
    await mkdir(base, { recursive: true, mode: 0o700 });
    await sweepWarmDirs(base, this.log);
    this.dir = await mkdtemp(join(base, WARM_DIR_PREFIX));
    await writeOwner(this.dir, { edge: process.pid });
    const socket = join(this.dir, 'haproxy.sock');
    const cfg = join(this.dir, 'haproxy.cfg');
    this.threads = input.threads;
    await writeFile(cfg, warmConfig({ ...input, statsSocket: socket, maxconn: maxconnFor(await hardNofile()) }), { mode: 0o600 });
    const check = await execa(this.bin, ['-c', '-q', '-f', cfg], { reject: false, all: true, stdin: 'ignore' });
    if ((check as { code?: string }).code === 'ENOENT') throw new UserError(`${printable(this.bin, 80)} not found: the warm path needs HAProxy`, 'install haproxy (apt-get install haproxy), or run with --warm off', ExitCode.unavailable);
    if (check.exitCode !== 0) throw new UserError(`haproxy refused the warm-path config: ${printable(firstAlert(String(check.all ?? check.shortMessage)), 240)}`, 'run with --warm off to serve through the edge only', ExitCode.config);
    // With setpriv (util-linux, in Debian's base system) HAProxy gets TERM when the edge dies,
    // even by kill -9: an orphan would keep the client ports and block the next edge.
    const setpriv = await findSetpriv();
    const argv = ['-db', '-f', cfg];
    this.child = setpriv
      ? execa(setpriv, ['--pdeathsig', 'TERM', '--', this.bin, ...argv], { reject: false, all: true, stdin: 'ignore', buffer: false })
      : execa(this.bin, argv, { reject: false, all: true, stdin: 'ignore', buffer: false });
    if (this.child.pid) await writeOwner(this.dir, { edge: process.pid, haproxy: this.child.pid });
    if (!setpriv) this.log.warn('setpriv not found: if the edge is killed, its HAProxy keeps running (stop it by the pid in status)');
    let out = '';
    this.child.all?.on('data', (d: Buffer) => {
      out = (out + d.toString()).slice(-4000);
      for (const line of d.toString().split('\n')) if (/\[(ALERT|WARNING)\]/.test(line) && !/maintenance|UP\/READY|is DOWN|no server available/.test(line)) this.log.warn('haproxy', { line: printable(line, 200) });
    });
    void this.child.then((r) => {
      this.exited = true;
      if (!this.stopping) this.log.error('the warm-path haproxy exited', { code: r.exitCode, signal: r.signal });
    });
    this.runtime = new HaproxyRuntime({ socket, timeoutMs: 2000 });
    for (const end = Date.now() + 10_000; Date.now() < end; await sleep(20)) {
      if (this.exited) break;
      if (await this.runtime.alive()) return;
    }
    throw new UserError(`haproxy did not start for the warm path: ${printable(firstAlert(out), 240)}`, 'check that the client ports are free, or run with --warm off', ExitCode.unavailable);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Membership commands run one after another, in the order given (a disable never overtakes an enable). */
  private chain: Promise<unknown>;

  private inOrder(cmds: string[], between?: () => Promise<void>, after: string[] = []): Promise<void> {
    const run = this.chain.then(async () => {
      for (const c of cmds) if (!this.exited) await this.runtime!.set(c);
      await between?.();
      for (const c of after) if (!this.exited) await this.runtime!.set(c);
    });
    this.chain = run.catch(() => {});
    return run;
  }

  /**
   * Put a node's app behind a slot: in each thread's backend its share of the concurrency first
   * (a slot is never unlimited), then ready; a thread whose share is 0 keeps the slot in
   * maintenance. Resolves with the slot's session counter before it went ready (a slot is
   * reused, and its counter with it).
   */
  async enable(route: string, slot: number, host: string, port: number, shares: readonly number[]): Promise<number> {
    const srvs = shares.flatMap((n, t) => (n > 0 ? [{ srv: `${backendOf(route, t)}/${serverOf(slot)}`, n }] : []));
    let stot = 0;
    await this.inOrder(srvs.flatMap(({ srv, n }) => [`set server ${srv} addr ${host} port ${port}`, `set maxconn server ${srv} ${n}`]), async () => {
      stot = (await this.stats()).get(route)?.slots.get(slot)?.stot ?? 0;
    }, srvs.map(({ srv }) => `set server ${srv} state ready`));
    return stot;
  }

  /** No new connection for the slot in any thread; the ones it carries go on. */
  disable(route: string, slot: number): Promise<void> {
    return this.inOrder(Array.from({ length: this.threads }, (_, t) => `set server ${backendOf(route, t)}/${serverOf(slot)} state maint`));
  }

  /** Queue depth per route and sessions per slot (summed over the threads' backends), from one `show stat`. */
  async stats(): Promise<Map<string, RouteStat>> {
    const out = new Map<string, RouteStat>();
    if (this.exited || !this.runtime) return out;
    for (const row of parseStat(await this.runtime!.command('show stat -1 6 -1'))) {
      const m = /^r(\d+)_(.+)$/.exec(row.pxname ?? '');
      const t = Number(m?.[1]);
      if (!m || !(t < this.threads)) continue;
      const route = m[2]!;
      let rs = out.get(route);
      if (!rs) out.set(route, (rs = { qcur: new Array<number>(this.threads).fill(0), slots: new Map() }));
      if (row.svname === 'BACKEND') rs.qcur[t] = Number(row.qcur) || 0;
      else if (/^n\d+$/.test(row.svname ?? '')) {
        const slot = Number(row.svname!.slice(1));
        let st = rs.slots.get(slot);
        if (!st) rs.slots.set(slot, (st = { scur: 0, stot: 0, threads: new Array<number>(this.threads).fill(0) }));
        const scur = Number(row.scur) || 0;
        st.scur += scur;
        st.stot += Number(row.stot) || 0;
        st.threads[t] = scur;
      }
    }
    return out;
  }

  private stopping = false;

  /** Stop listening now (soft stop: connections in flight go on); resolves when HAProxy exited or at the deadline. */
  async softStop(deadline: number): Promise<void> {
    if (!this.child || this.exited) return;
    this.stopping = true;
    this.child.kill('SIGUSR1');
    while (!this.exited && Date.now() < deadline) await sleep(25);
  }

  async close(): Promise<void> {
    this.stopping = true;
    if (this.child && !this.exited) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child?.kill('SIGKILL'), 2000);
      await this.child;
      clearTimeout(t);
    }
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** The hard limit on open files HAProxy inherits (it raises its soft limit up to it). */
async function hardNofile(): Promise<number | null> {
  try {
    const m = /^Max open files\s+\S+\s+(\d+)/m.exec(await readFile('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function findSetpriv(): Promise<string | null> {
  for (const p of ['/usr/bin/setpriv', '/bin/setpriv']) {
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

function firstAlert(text: string): string {
  return text.split('\n').find((l) => l.includes('[ALERT]')) ?? text.trim().split('\n')[0] ?? '';
}
