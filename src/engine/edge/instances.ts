import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
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

export class Instances {
  private readonly live = new Map<string, Instance>();

  constructor(
    private readonly command: readonly string[],
    private readonly env: InstanceEnv,
    private readonly logger: Logger,
    private readonly onExit: (inst: Instance, code: number | null, signalName: string | null) => void,
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
    const child = execa(this.command[0]!, this.command.slice(1), {
      env: { ELASTIC_EDGE: this.env.edge, ELASTIC_ROUTE: route, ELASTIC_EDGE_TOKEN: routeToken(this.env.token, route).toString(), ELASTIC_INSTANCE: id },
      stdin: 'ignore',
      stdout: 2,
      stderr: 2,
      detached: true,
      reject: false,
      buffer: false,
      cleanup: false,
    });
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
    this.logger.info('started instance', { route, instance: id, pid: inst.pid });
    return inst;
  }

  async stop(id: string, graceMs: number): Promise<void> {
    const inst = this.live.get(id);
    if (inst) await terminate(inst.pid, graceMs, inst.exited, true);
  }

  async stopAll(graceMs: number): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.stop(id, graceMs)));
  }
}
