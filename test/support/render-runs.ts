import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderStop } from '../../src/engine/render.js';
import { elastic } from './cli.js';

type Proxy = 'haproxy' | 'nginx';
type Child = ReturnType<typeof elastic>;

/**
 * The set-up the render integration tests share: one short temporary directory (HAProxy's
 * socket paths must fit 108 bytes), a state and a run directory per instance inside it,
 * `elastic render` children started through `start`, and `cleanup` (for afterAll) that stops
 * each child and the proxy it started, then removes the directory, also after a failed test.
 */
export class RenderRuns {
  dir = '';
  private readonly running: Array<{ child: Child; instance: string; proxy: Proxy }> = [];

  /** Make the directory: call in beforeAll; `prefix` names it (`el-xf-` -> /tmp/el-xf-XXXXXX). */
  async init(prefix: string): Promise<string> {
    this.dir = await mkdtemp(join(tmpdir(), prefix));
    return this.dir;
  }

  env(instance: string): Record<string, string> {
    return { ELASTIC_STATE_DIR: join(this.dir, instance, 'state'), ELASTIC_RUN_DIR: join(this.dir, instance, 'run') };
  }

  /** Where the instance keeps its config (`haproxy.cfg`, `nginx.conf`). */
  stateDir(instance: string): string {
    return join(this.dir, instance, 'state', `render-${instance}`);
  }

  /** Where the instance keeps its proxy's sockets and certificates. */
  runDir(instance: string): string {
    return join(this.dir, instance, 'run', `render-${instance}`);
  }

  /** The status socket of `render --watch` (docs/render.md "Status socket"). */
  statusSocket(instance: string): string {
    return join(this.dir, instance, 'run', `render.${instance}.sock`);
  }

  /** `elastic render ARGS --instance-name INSTANCE` (`--proxy` is the caller's, in ARGS). */
  start(instance: string, proxy: Proxy, args: readonly string[], timeout = 300_000): Child {
    const child = elastic(['render', ...args, '--instance-name', instance], { env: this.env(instance), timeout });
    this.running.push({ child, instance, proxy });
    return child;
  }

  async cleanup(): Promise<void> {
    for (const r of this.running) {
      r.child.kill('SIGTERM');
      await r.child.catch(() => {});
      await renderStop({ instance: r.instance, proxy: r.proxy, env: this.env(r.instance), timeoutMs: 5000 }).catch(() => {});
    }
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
