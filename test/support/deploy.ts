import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { docker as mainDocker } from './docker.js';
import { elastic } from './cli.js';
import { ownedStateDir } from './owned.js';

/**
 * Deploy test fixture: private state and run dirs, a unique `dpl` service name per test, the CLI
 * with that environment, and cleanup of every container deploy made for those services (only
 * containers labelled elastic.managed=true with our service names).
 */
export class DeployFixture {
  readonly tag = `${process.pid % 10000}${Math.random().toString(36).slice(2, 5)}`;
  stateDir = '';
  runDir = '';
  private services = new Set<string>();

  constructor(private readonly client: Docker = mainDocker) {}

  async setup(): Promise<void> {
    this.stateDir = ownedStateDir('elastic-deploy-state-');
    this.runDir = await mkdtemp(join(tmpdir(), 'elastic-deploy-run-'));
  }

  service(name: string): string {
    const s = `dpl${name}${this.tag}`;
    this.services.add(s);
    return s;
  }

  get env(): Record<string, string> {
    return { ELASTIC_STATE_DIR: this.stateDir, ELASTIC_RUN_DIR: this.runDir };
  }

  run(args: string[], opts: { env?: Record<string, string>; timeout?: number } = {}) {
    return elastic(args, { env: { ...this.env, ...opts.env }, timeout: opts.timeout ?? 90_000 });
  }

  async containers(service: string, all = true): Promise<Docker.ContainerInfo[]> {
    return this.client.listContainers({ all, filters: JSON.stringify({ label: [`elastic.service=${service}`, 'elastic.managed=true'] }) });
  }

  /** Stop a `render --watch --start` this test ran (SIGTERM, awaited) and the HAProxy it manages. */
  async stopRender(render: ReturnType<DeployFixture['run']> | null, instance: string): Promise<void> {
    if (render) {
      render.kill('SIGTERM');
      await render.catch(() => {});
    }
    const d = defaultPaths(instance, 'haproxy', this.env);
    await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  }

  async cleanup(): Promise<void> {
    for (const s of this.services) {
      const list = await this.containers(s).catch(() => []);
      await Promise.all(list.map((c) => this.client.getContainer(c.Id).remove({ force: true }).catch(() => {})));
    }
    await rm(this.stateDir, { recursive: true, force: true });
    await rm(this.runDir, { recursive: true, force: true });
  }
}

/** Fast rollouts for tests: short gate, quick stop (busybox httpd as PID 1 ignores SIGTERM). */
export const FAST = ['--min-healthy', '300ms', '--stop-timeout', '1', '--drain-timeout', '2s'];
