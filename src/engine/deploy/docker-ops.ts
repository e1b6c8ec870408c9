import type Docker from 'dockerode';
import { createDocker, dockerError, type DockerTarget } from '../discovery/docker/client.js';
import { healthOf } from '../discovery/docker/parse.js';
import { ExitCode, UserError } from '../errors.js';
import { isAddress, isSafeText, printable } from '../model/validate.js';
import type { ContainerState, Replica } from './plan.js';
import { LABEL, containerName, isRevision, labelsFor, type ContainerSpec } from './spec.js';
import { namespaceOfEnv } from '../dataplane/namespace.js';

/**
 * The only part of deploy that talks to Docker: images, the service's containers, create / start
 * / inspect / stop / remove, and CPU stats. dockerode types stop here; the rest of deploy sees
 * `Replica` and plain records. Every Docker failure leaves as a UserError (dockerError).
 */
export interface ImageFacts {
  readonly id: string;
  readonly hasHealthcheck: boolean;
  readonly exposedPorts: readonly number[];
}

export interface ReplicaDetail {
  readonly state: ContainerState;
  readonly health: Replica['health'];
  readonly exitCode: number;
  readonly restarts: number;
  readonly address?: string;
  readonly lastHealthOutput?: string;
}

const STATES: readonly ContainerState[] = ['running', 'created', 'restarting', 'paused', 'exited', 'dead', 'removing'];
const asState = (s: unknown): ContainerState => (STATES.includes(s as ContainerState) ? (s as ContainerState) : 'dead');
const asHealth = (s: unknown): Replica['health'] => (s === 'healthy' || s === 'unhealthy' || s === 'starting' ? s : 'none');

export class DeployDocker {
  readonly docker: Docker;
  readonly target: DockerTarget;

  /** The state directory's namespace, on every container created (LABEL.state). */
  readonly namespace: string;

  /**
   * Runs before every container change (create, stop, remove) and rejects to prevent it: a fleet
   * host checks in the store that it still leads (run/deploys.ts SingletonGate).
   */
  guard: ((what: string) => Promise<void>) | undefined;

  constructor(host?: string, env: NodeJS.ProcessEnv = process.env) {
    ({ docker: this.docker, target: this.target } = createDocker(host, env));
    this.namespace = namespaceOfEnv(env).id || 'default';
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw dockerError(err, this.target);
    }
  }

  async ping(): Promise<void> {
    await this.call(() => this.docker.ping());
  }

  /** The image must be on this host: there is no registry to pull from. */
  async image(ref: string): Promise<ImageFacts> {
    let info: Docker.ImageInspectInfo;
    try {
      info = await this.docker.getImage(ref).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        throw new UserError(
          `image ${printable(ref, 100)} is not on the Docker host ${this.target.display}`,
          'elastic does not pull (there is no registry): load it with `docker load -i image.tar` or build it with `docker import rootfs.tar NAME:TAG`, then re-run',
          ExitCode.config,
        );
      }
      throw dockerError(err, this.target);
    }
    const ports = Object.keys(info.Config?.ExposedPorts ?? {})
      .filter((p) => p.endsWith('/tcp'))
      .map((p) => Number(p.split('/')[0]));
    const test = info.Config?.Healthcheck?.Test ?? [];
    return { id: info.Id, hasHealthcheck: test.length > 0 && test[0] !== 'NONE', exposedPorts: ports };
  }

  /**
   * The service's containers (running or not), as Replicas. Refuses when a container elastic does
   * not own claims the service label or has a name deploy would use.
   */
  async replicas(service: string): Promise<Replica[]> {
    const [labelled, named] = await this.call(() =>
      Promise.all([
        this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.service}=${service}`] }) }),
        this.docker.listContainers({ all: true, filters: JSON.stringify({ name: [service] }) }),
      ]),
    );
    const ours = new RegExp(`^${service.replace(/[.]/g, '\\.')}(-[0-9a-f]{8}-[0-9a-f]{6})?$`);
    for (const c of [...labelled, ...named]) {
      const name = (c.Names?.[0] ?? '').replace(/^\//, '');
      const managed = c.Labels?.[LABEL.managed] === 'true';
      const claims = c.Labels?.[LABEL.service] === service || ours.test(name);
      if (claims && !managed) {
        throw new UserError(
          `container ${printable(name || c.Id.slice(0, 12), 80)} (${c.Id.slice(0, 12)}) uses the service name "${service}" but was not created by elastic deploy`,
          `elastic only touches containers labelled ${LABEL.managed}=true: pick another --name, or remove or rename that container yourself`,
          ExitCode.refused,
        );
      }
    }
    return labelled.filter((c) => c.Labels?.[LABEL.managed] === 'true').map((c) => toReplica(c));
  }

  /**
   * Every service this state directory deploys on this host (for `deploy status` without a
   * name): containers labelled with our namespace; unlabelled ones (an older elastic) count as
   * the default state directory's.
   */
  async services(): Promise<string[]> {
    const list = await this.call(() => this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.managed}=true`] }) }));
    const ours = list.filter((c) => (c.Labels?.[LABEL.state] ?? 'default') === this.namespace);
    return [...new Set(ours.map((c) => c.Labels?.[LABEL.service] ?? '').filter((s) => s && isSafeText(s, 64)))].sort();
  }

  /**
   * Create and start a replica. `beforeStart` runs between the two (the deploy records the
   * replica as gating there). A container that cannot start (a missing network, a bad command) is
   * removed again: no Created container is left behind.
   */
  async create(
    service: string,
    revision: string,
    index: number,
    spec: ContainerSpec,
    imageId: string,
    stopTimeoutS: number,
    beforeStart: (id: string) => Promise<void> = async () => {},
  ): Promise<Replica> {
    const healthcheck = spec.health.kind === 'cmd'
      ? {
          Test: ['CMD-SHELL', spec.health.cmd],
          Interval: spec.healthTiming.intervalMs * 1e6,
          Timeout: spec.healthTiming.timeoutMs * 1e6,
          Retries: spec.healthTiming.retries,
          StartPeriod: spec.healthTiming.startPeriodMs * 1e6,
        }
      : spec.health.kind === 'none'
        ? { Test: ['NONE'] }
        : undefined;
    await this.guard?.(`creating a replica of ${service}`);
    const tagged = await this.docker.getImage(spec.image).inspect().then((i) => i.Id, () => '');
    const ref = tagged === imageId ? spec.image : imageId;
    for (let attempt = 0; ; attempt++) {
      const name = containerName(service, revision);
      try {
        const c = await this.docker.createContainer({
          name,
          // By reference, as an operator would (so `discover --image` and `map-image IMAGE`
          // match by tag) while the tag still names the revision's image; else by ID (a rollback
          // after the tag moved). Checked right after.
          Image: ref,
          Cmd: spec.cmd ? [...spec.cmd] : undefined,
          Env: [...spec.env],
          Labels: { ...labelsFor(service, revision, index, spec.labels), 'elastic.image': spec.image, [LABEL.state]: this.namespace },
          ExposedPorts: spec.port ? { [`${spec.port}/tcp`]: {} } : undefined,
          Healthcheck: healthcheck,
          StopTimeout: stopTimeoutS,
          HostConfig: {
            NetworkMode: spec.network ?? 'bridge',
            RestartPolicy: { Name: 'unless-stopped' },
            Memory: spec.memoryBytes,
            NanoCpus: spec.cpus ? Math.round(spec.cpus * 1e9) : undefined,
          },
        });
        if ((await c.inspect()).Image !== imageId) {
          await c.remove({ force: true }).catch(() => {});
          throw new UserError(`the tag ${printable(spec.image, 100)} moved to another image during the deploy`, 're-run the deploy: it rolls out the image the tag points to now', ExitCode.refused);
        }
        try {
          await beforeStart(c.id.slice(0, 12));
          await c.start();
        } catch (err) {
          await c.remove({ force: true }).catch(() => {});
          throw err;
        }
        return { id: c.id.slice(0, 12), name, revision, index, state: 'running', health: 'starting', created: new Date().toISOString() };
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 409 && attempt < 2) continue; // a random name clash
        throw dockerError(err, this.target);
      }
    }
  }

  /** Refuse a --network that is not there before anything is created or written. */
  async checkNetwork(name: string): Promise<void> {
    const found = await this.call(() => this.docker.listNetworks({ filters: JSON.stringify({ name: [name] }) }));
    if (!found.some((n) => n.Name === name || n.Id === name || n.Id.startsWith(name))) {
      throw new UserError(`Docker network "${printable(name, 80)}" does not exist`, `create it first (docker network create ${printable(name, 80)}) or pick another --network; nothing was created`, ExitCode.usage);
    }
  }

  /**
   * A no-op `docker update`: Docker emits an `update` event, so discovery re-lists now. Not an
   * empty object: dockerode sends no body for `{}` and Docker answers 500 "EOF" (no event, and the
   * replica was served only at the next resync, 30 s later). CpuShares 0 means "unchanged" to
   * Docker's update.
   */
  async touch(id: string): Promise<void> {
    await this.call(() => this.docker.getContainer(id).update({ CpuShares: 0 }));
  }

  async inspect(id: string, network?: string): Promise<ReplicaDetail | null> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(id).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return null;
      throw dockerError(err, this.target);
    }
    const nets = info.NetworkSettings?.Networks ?? {};
    const net = network ? nets[network] : Object.values(nets)[0];
    const address = net?.IPAddress && isAddress(net.IPAddress) ? net.IPAddress : undefined;
    const log = info.State?.Health?.Log ?? [];
    const last = log[log.length - 1]?.Output;
    return {
      state: asState(info.State?.Status),
      health: asHealth(info.State?.Health?.Status),
      exitCode: info.State?.ExitCode ?? 0,
      restarts: info.RestartCount ?? 0,
      address,
      lastHealthOutput: last ? printable(last.trim(), 120) : undefined,
    };
  }

  /**
   * Send the container its stop signal (SIGTERM unless the image says otherwise) and return: from
   * here it is on its way out. `stop()` then waits for it and kills it after the timeout.
   */
  async signalStop(id: string): Promise<void> {
    await this.guard?.(`stopping replica ${id}`);
    try {
      const c = this.docker.getContainer(id);
      const sig = ((await c.inspect()).Config as { StopSignal?: string } | undefined)?.StopSignal || 'SIGTERM';
      await c.kill({ signal: /^(SIG)?[A-Z0-9+-]{2,12}$/.test(sig) ? sig : 'SIGTERM' });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code === 304 || code === 404 || code === 409) return; // not running / gone
      throw dockerError(err, this.target);
    }
  }

  async stop(id: string, timeoutS: number): Promise<void> {
    await this.guard?.(`stopping replica ${id}`);
    try {
      await this.docker.getContainer(id).stop({ t: timeoutS });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code === 304 || code === 404) return; // already stopped / gone
      throw dockerError(err, this.target);
    }
  }

  async remove(id: string): Promise<void> {
    await this.guard?.(`removing replica ${id}`);
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code === 404 || code === 409) return; // gone, or already being removed
      throw dockerError(err, this.target);
    }
  }

  /** CPU use of one container in percent of one core, from two samples Docker gives in one call. */
  async cpuPercent(id: string): Promise<number | undefined> {
    try {
      const s = (await this.docker.getContainer(id).stats({ stream: false })) as unknown as {
        cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
        precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
      };
      const cpu = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
      const sys = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
      if (cpu < 0 || sys <= 0) return undefined;
      return (cpu / sys) * (s.cpu_stats?.online_cpus ?? 1) * 100;
    } catch {
      return undefined;
    }
  }
}

function toReplica(c: Docker.ContainerInfo): Replica {
  const rev = c.Labels?.[LABEL.revision] ?? '';
  const idx = Number(c.Labels?.[LABEL.replica]);
  const nets = Object.values(c.NetworkSettings?.Networks ?? {});
  const addr = nets[0]?.IPAddress;
  return {
    id: c.Id.slice(0, 12),
    name: printable((c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, ''), 80),
    revision: isRevision(rev) ? rev : 'unknown',
    index: Number.isInteger(idx) && idx > 0 ? idx : 0,
    state: asState(c.State),
    health: healthOf(c.Status),
    address: addr && isAddress(addr) ? addr : undefined,
    created: new Date(c.Created * 1000).toISOString(),
  };
}
