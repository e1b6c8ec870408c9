import Docker from 'dockerode';
import { readdir, readFile } from 'node:fs/promises';

/**
 * Real containers for integration tests. Every container a test makes carries the label
 * `elastic.test=<run id>` and is removed by `cleanup()` (call it in afterAll/afterEach), so a
 * failing test leaves nothing behind. Only containers with our label are ever removed.
 */
export const TEST_IMAGE = 'elastic-test/web:1';
export const OTHER_IMAGE = 'elastic-test/other:1';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Fail loudly (never skip) when the test host is not set up. */
export async function requireDocker(): Promise<void> {
  try {
    await docker.ping();
  } catch (err) {
    throw new Error(`dockerd is not reachable (${(err as Error).message}): run "sudo bash scripts/test-host.sh" first`);
  }
  try {
    await docker.getImage(TEST_IMAGE).inspect();
  } catch {
    throw new Error(`test image ${TEST_IMAGE} is missing: run "sudo bash scripts/test-host.sh" first`);
  }
}

export class TestContainers {
  readonly runId = `t${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  async run(opts: { image?: string; name?: string; labels?: Record<string, string>; network?: string; cmd?: string[]; healthCmd?: string[] } = {}): Promise<Docker.Container> {
    const name = opts.name ?? `${this.runId}-${Math.random().toString(36).slice(2, 7)}`;
    const c = await docker.createContainer({
      Image: opts.image ?? TEST_IMAGE,
      name,
      Cmd: opts.cmd,
      Labels: { 'elastic.test': this.runId, ...opts.labels },
      HostConfig: { NetworkMode: opts.network ?? 'bridge', AutoRemove: false },
      Healthcheck: opts.healthCmd ? { Test: ['CMD', ...opts.healthCmd], Interval: 200_000_000, Timeout: 1_000_000_000, Retries: 1, StartPeriod: 0 } : undefined,
    });
    await c.start();
    return c;
  }

  async ip(c: Docker.Container, network = 'bridge'): Promise<string> {
    const info = await c.inspect();
    return info.NetworkSettings.Networks[network]?.IPAddress ?? '';
  }

  /** Remove every container this run made (running or not). */
  async cleanup(): Promise<void> {
    const list = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`elastic.test=${this.runId}`] }) });
    await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  }
}

/** Run `sh -c script` in a container and return its output (a TTY: one raw stream, no multiplexing headers). */
export async function execText(c: Docker.Container, script: string): Promise<string> {
  const stream = await (await c.exec({ Cmd: ['sh', '-c', script], AttachStdout: true, AttachStderr: true, Tty: true })).start({ Tty: true });
  return new Promise<string>((resolve, reject) => {
    let buf = '';
    stream.on('data', (d: Buffer) => (buf += d.toString('latin1')));
    stream.on('end', () => resolve(buf));
    stream.on('error', reject);
  });
}

/** The hairpin mode ('0' or '1') of the host's bridge port of the container's eth0 (its veth peer); '' if none is found. */
export async function hairpinMode(c: Docker.Container): Promise<string> {
  const pid = (await c.inspect()).State.Pid;
  const peer = (await readFile(`/proc/${pid}/root/sys/class/net/eth0/iflink`, 'utf8')).trim();
  for (const name of await readdir('/sys/class/net')) {
    if ((await readFile(`/sys/class/net/${name}/ifindex`, 'utf8').catch(() => '')).trim() !== peer) continue;
    return (await readFile(`/sys/class/net/${name}/brport/hairpin_mode`, 'utf8').catch(() => '')).trim();
  }
  return '';
}

/** Wait until `fn` returns a truthy value, polling; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
