import { randomBytes } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../runtime/logger.js';
import { signal, terminate } from './process.js';
import { routeToken } from './token.js';

/**
 * The processes the edge starts (the start command, an argv array, never a shell string). Each
 * is a process-group leader, so stopping it also stops whatever it started (the app under
 * `elastic proxy node`), even after the instance itself was killed with -9.
 *
 * The instance learns where to connect from its environment: ELASTIC_EDGE (host:port of the
 * node port), ELASTIC_ROUTE, ELASTIC_EDGE_TOKEN (a token for that route only, never the edge's
 * own), ELASTIC_INSTANCE (its id, echoed in AUTH).
 */
export interface Instance {
  readonly id: string;
  readonly route: string;
  readonly pid: number;
  readonly started: number;
  connected: boolean;
  exitCode: number | null;
  readonly exited: Promise<void>;
}

export interface InstanceEnv {
  edge: string;
  /** The edge token: instances get routeToken(token, route) derived from it. */
  token: Buffer;
}

const SPARE_REFILL_MS = 1000;

export class Instances {
  private readonly live = new Map<string, Instance>();
  private readonly spares = new Map<string, ResultPromise>();
  private closed = false;

  constructor(
    private readonly command: readonly string[],
    private readonly env: InstanceEnv,
    private readonly logger: Logger,
    private readonly onExit: (inst: Instance, code: number | null, signalName: string | null) => void,
    /** Keep one loaded, waiting start command per route (see keepSpare). */
    private readonly spare = false,
  ) {}

  get size(): number {
    return this.live.size;
  }

  get(id: string): Instance | undefined {
    return this.live.get(id);
  }

  all(): Instance[] {
    return [...this.live.values()];
  }

  start(route: string): Instance | null {
    const id = randomBytes(6).toString('hex');
    // A spare of the route (loaded, waiting on stdin) becomes this instance: no Node start-up on
    // the waiting client's path. Another spare is started a moment later, off that path.
    const spare = this.spares.get(route);
    this.spares.delete(route);
    const fromSpare = spare !== undefined && spare.exitCode === null && spare.signalCode === null && spare.stdin?.writable === true;
    if (fromSpare) spare.stdin!.end(`${id}\n`);
    else if (spare) terminateSpare(spare);
    const child = fromSpare ? spare : this.spawn(route, { ELASTIC_INSTANCE: id }, 'ignore');
    if (this.spare) this.refill(route);
    if (child.pid === undefined) {
      void child.catch(() => {});
      this.logger.error('start command failed to spawn', { route, command: this.command[0] });
      return null;
    }
    const inst: Instance = {
      id,
      route,
      pid: child.pid,
      started: Date.now(),
      connected: false,
      exitCode: null,
      exited: child.then(
        (r) => {
          inst.exitCode = r.exitCode ?? null;
          this.live.delete(id);
          // Anything the instance left behind in its group (an app whose node was killed).
          signal(inst.pid, 'SIGTERM', true);
          setTimeout(() => signal(inst.pid, 'SIGKILL', true), 3000).unref();
          this.onExit(inst, r.exitCode ?? null, r.signal ?? null);
        },
        () => undefined,
      ),
    };
    this.live.set(id, inst);
    this.logger.info('started instance', { route, instance: id, pid: inst.pid, ...(fromSpare ? { spare: true } : {}) });
    return inst;
  }

  private spawn(route: string, extra: Record<string, string>, stdin: 'ignore' | 'pipe'): ResultPromise {
    return execa(this.command[0]!, this.command.slice(1), {
      env: { ELASTIC_EDGE: this.env.edge, ELASTIC_ROUTE: route, ELASTIC_EDGE_TOKEN: routeToken(this.env.token, route).toString(), ...extra },
      stdin,
      stdout: 2,
      stderr: 2,
      detached: true,
      reject: false,
      buffer: false,
      cleanup: false,
    });
  }

  /**
   * Keep one spare per route (`--spare`): the start command with ELASTIC_NODE_SPARE=1 and its
   * stdin a pipe from us. `elastic proxy node` loads, then waits for its instance id on stdin
   * before it starts the app; at EOF (the edge stopped, even killed) it exits.
   */
  keepSpare(route: string): void {
    if (!this.spare || this.closed || this.spares.has(route)) return;
    const child = this.spawn(route, { ELASTIC_NODE_SPARE: '1' }, 'pipe');
    if (child.pid === undefined) return void child.catch(() => {});
    child.stdin?.on('error', () => {});
    this.spares.set(route, child);
    void child.then((r) => {
      if (this.spares.get(route) !== child) return;
      this.spares.delete(route);
      if (!this.closed) this.logger.warn('a spare instance exited before it was used; no more spares for the route', { route, code: r.exitCode, signal: r.signal });
    });
  }

  private refill(route: string): void {
    // Not at once: its start-up would compete for the CPU with the instance a client waits for.
    setTimeout(() => this.keepSpare(route), SPARE_REFILL_MS).unref();
  }

  /** The spares' pids (status, tests). */
  sparePids(): number[] {
    return [...this.spares.values()].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
  }

  /** No more spares; the ones there see EOF and exit (TERM to their group as well). */
  closeSpares(): void {
    this.closed = true;
    for (const c of this.spares.values()) terminateSpare(c);
    this.spares.clear();
  }

  async stop(id: string, graceMs: number): Promise<void> {
    const inst = this.live.get(id);
    if (inst) await terminate(inst.pid, graceMs, inst.exited, true);
  }

  async stopAll(graceMs: number): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.stop(id, graceMs)));
  }
}

function terminateSpare(c: ResultPromise): void {
  c.stdin?.destroy();
  if (c.pid !== undefined) signal(c.pid, 'SIGTERM', true);
}

/**
 * Whether a start command is `elastic proxy node ...` (the binary `elastic`, or Node running
 * elastic's `bin/run.js`), the one command known to honour the spare protocol: `--spare` is then
 * on unless `--no-spare`. A wrapper script that runs it is not recognised (use `--spare`).
 */
export function isProxyNodeCommand(argv: readonly string[] | undefined): boolean {
  if (!argv?.length) return false;
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
  const at = base(argv[0]!) === 'elastic' ? 1 : /^node(js)?(\d+)?$/.test(base(argv[0]!)) && /(^|\/)bin\/run\.js$/.test(argv[1] ?? '') ? 2 : -1;
  return at > 0 && argv[at] === 'proxy' && argv[at + 1] === 'node';
}
