import { ExitCode, UserError } from '../../errors.js';
import type { Logger } from '../../runtime/logger.js';
import { sleep } from '../../runtime/clock.js';
import type { Applier, ApplyOutcome, ApplyPlan, DesiredRender } from '../applier.js';
import { backendName, opCommands, planHaproxy, type HaproxyApplied } from './plan.js';
import { HaproxyProcess } from './process.js';
import { pidAlive } from '../../runtime/pid.js';
import { HaproxyRuntime, isMaint, type ServerStat } from './runtime.js';

/**
 * HAProxy, best path first: membership changes through the runtime API (no reload); structural
 * changes by a seamless master-worker reload; a dead HAProxy started again (when we manage it).
 * Every apply is verified against `show servers state`.
 */
export interface HaproxyApplierOptions {
  config: string;
  statsSocket: string;
  masterSocket: string;
  pidFile: string;
  /** Start HAProxy when it is not running (render --start; restarts under --watch). */
  manage: boolean;
  bin?: string;
  logger?: Logger;
}

export class HaproxyApplier implements Applier {
  readonly proxy = 'haproxy' as const;
  readonly paths: Readonly<Record<string, string>>;
  readonly process: HaproxyProcess;
  private readonly direct: HaproxyRuntime;
  private readonly viaMaster: HaproxyRuntime;

  constructor(private readonly opts: HaproxyApplierOptions) {
    this.paths = { statsSocket: opts.statsSocket, masterSocket: opts.masterSocket, pidFile: opts.pidFile };
    this.process = new HaproxyProcess({ config: opts.config, masterSocket: opts.masterSocket, pidFile: opts.pidFile, bin: opts.bin });
    this.direct = new HaproxyRuntime({ socket: opts.statsSocket });
    this.viaMaster = new HaproxyRuntime({ socket: opts.masterSocket, prefix: '@1 ' });
  }

  plan(last: HaproxyApplied | undefined, desired: DesiredRender): ApplyPlan {
    return planHaproxy(last, desired);
  }

  /** The current worker's runtime API: the stats socket (direct, fastest), else the master's @1. */
  async api(): Promise<HaproxyRuntime> {
    return (await this.direct.alive()) ? this.direct : this.viaMaster;
  }

  async alive(): Promise<boolean> {
    // HAProxy we manage must have its master (reloads go through it); one we attach to may be
    // a plain process with only a stats socket.
    if (this.opts.manage) return this.process.alive();
    return (await this.direct.alive()) || (await this.process.alive());
  }

  async start(): Promise<void> {
    await this.process.start();
  }

  /** The master (it re-executes in place on reload; its workers are its children). */
  async owners(): Promise<readonly number[]> {
    const master = (await this.process.showProc())?.masterPid;
    if (master) return [master];
    const info = await this.direct.command('show info').catch(() => ''); // a plain HAProxy without master CLI
    const pid = Number(/^Pid: (\d+)$/m.exec(info)?.[1]) || (await this.process.pid());
    return pid && pid > 1 && pidAlive(pid) ? [pid] : [];
  }

  async apply(plan: ApplyPlan, desired: DesiredRender): Promise<ApplyOutcome> {
    const t0 = performance.now();
    const done = (action: ApplyOutcome['action'], ops: number, reason: string): ApplyOutcome => ({ action, ops, reason, ms: Math.round(performance.now() - t0) });
    if (plan.action === 'runtime') {
      // The caller has just seen HAProxy alive; a refusal here makes it fall back to a reload.
      let n = 0;
      for (const op of plan.ops) for (const cmd of opCommands(op)) {
        await this.direct.set(cmd);
        n++;
      }
      await this.verify(desired, this.direct);
      return done('runtime', n, plan.reason);
    }
    if (!(await this.alive())) {
      if (!this.opts.manage) {
        throw new UserError(`HAProxy is not running (no answer on ${this.opts.statsSocket} or ${this.opts.masterSocket})`, 'start it, or pass --start to let render start and manage it', ExitCode.unavailable);
      }
      await this.process.start();
      await this.verify(desired, this.viaMaster);
      return done('start', 0, 'HAProxy was not running: started');
    }
    if (plan.action === 'none') {
      return done('none', 0, plan.reason);
    }
    await this.reload();
    await this.verify(desired, this.viaMaster);
    return done('reload', 0, plan.reason);
  }

  private async reload(): Promise<void> {
    if ((await this.process.showProc()) === null) {
      throw new UserError(`cannot reload HAProxy: master socket ${this.opts.masterSocket} does not answer`, 'run HAProxy in master-worker mode with -S <socket> and pass --master-socket, or --start', ExitCode.unavailable);
    }
    await this.process.reload();
  }

  /** `show servers state` must match the desired slots: addresses, ports, in or out of rotation. */
  async verify(desired: DesiredRender, api: HaproxyRuntime): Promise<void> {
    const state = await api.serversState();
    const byName = new Map(state.map((s) => [`${s.backend}/${s.server}`, s]));
    const problems: string[] = [];
    for (const [service, slots] of Object.entries(desired.slots)) {
      slots.forEach((slot, i) => {
        const key = `${backendName(service)}/s${i + 1}`;
        const s = byName.get(key);
        if (!s) problems.push(`${key} missing`);
        else if (slot && (s.address !== slot.address || s.port !== slot.port || isMaint(s))) problems.push(`${key} is ${s.address}:${s.port}${isMaint(s) ? ' (maint)' : ''}, want ${slot.address}:${slot.port}`);
        else if (!slot && !isMaint(s)) problems.push(`${key} should be empty (maint) but is in rotation`);
      });
    }
    if (problems.length > 0) {
      throw new UserError(`HAProxy state does not match the render: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (+${problems.length - 3})` : ''}`, 'a custom template must keep backends named be_<service> with servers s1..sN; see docs/render.md', ExitCode.refused);
    }
  }

  async stats(): Promise<ServerStat[]> {
    return (await this.api()).stat();
  }

  /**
   * The sessions of one server: the current worker's, plus those of old workers (a reload leaves
   * them serving their connections until hard-stop-after) on the same address, read through the
   * master CLI (`@!PID`). An old worker that exits meanwhile has none left.
   */
  async waitSessions(service: string, server: string, timeoutMs: number, signal?: AbortSignal): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      const row = (await (await this.api()).stat()).find((s) => s.backend === backendName(service) && s.server === server);
      // The pass just rendered this server: no row means HAProxy did not answer `show stat`.
      if (!row) throw new UserError(`HAProxy's show stat does not list ${backendName(service)}/${server}`, 'check the HAProxy stats socket', ExitCode.unavailable);
      const sessions = row.scur + (await this.oldWorkerSessions(backendName(service), row.address));
      if (sessions === 0 || Date.now() - t0 >= timeoutMs || signal?.aborted) return sessions;
      await sleep(100, signal).catch(() => {});
    }
  }

  private async oldWorkerSessions(backend: string, address: string): Promise<number> {
    const old = (await this.process.showProc())?.oldWorkers ?? [];
    const counts = await Promise.all(
      old.map(async (w) => {
        const rows = await new HaproxyRuntime({ socket: this.opts.masterSocket, prefix: `@!${w.pid} `, timeoutMs: 2000 }).stat().catch(() => []);
        return rows.filter((r) => r.backend === backend && r.address === address).reduce((n, r) => n + r.scur, 0);
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  }
}
