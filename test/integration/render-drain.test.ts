import { mkdtemp, chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainEverywhere } from '../../src/engine/deploy/drain.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { defaultPaths } from '../../src/engine/render.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { elastic } from '../support/cli.js';
import { TestContainers, requireDocker, waitFor } from '../support/docker.js';
import { httpGet, startVarnishd } from '../support/render-backends.js';

// Issue 14 item 8 (render): an nginx or Varnish render shows its backends on its status socket
// (what top lists), answers deploy's drain contract (not "not ours"), and answers `undrain`.
// Real nginx and varnishd, real containers, `render --watch` as operators run it.
// Ports 22540 (nginx), 22541 + 22542 (Varnish and its admin port).
const tc = new TestContainers();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;
let varnishPid = 0;

const served = async (front: number, n: number) => {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await httpGet(front).catch(() => ''));
  return seen;
};

// Each proxy as an operator starts it: nginx by render (--start), varnishd by the operator.
const CASES = [
  { proxy: 'nginx', name: 'rdn', front: 22540, start: async () => ['--start'] },
  {
    proxy: 'varnish',
    name: 'rdv',
    front: 22541,
    start: async () => {
      const { pid, work } = await startVarnishd(join(dir, 'v'), 22541, 22542);
      varnishPid = pid;
      return ['--varnish-name', work];
    },
  },
] as const;

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-drain-'));
  await chmod(dir, 0o755); // varnishd compiles the VCL as its own user
  await mkdir(join(dir, 'v'), { mode: 0o755 });
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
});

const stopWatch = async () => {
  if (!watch) return;
  watch.kill('SIGTERM');
  await watch.catch(() => {});
  watch = null;
};

afterAll(async () => {
  await stopWatch();
  if (varnishPid > 1 && pidAlive(varnishPid)) process.kill(varnishPid, 'SIGTERM');
  await waitFor(() => !(varnishPid > 1 && pidAlive(varnishPid)), 'varnishd stopped', 10_000).catch(() => {});
  const pid = Number(await readFile(defaultPaths('rdn', 'nginx', env).pidFile, 'utf8').catch(() => '0'));
  if (pid > 1 && pidAlive(pid)) process.kill(pid, 'SIGQUIT');
  await waitFor(() => !(pid > 1 && pidAlive(pid)), 'nginx stopped', 10_000).catch(() => {});
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe('render --proxy nginx|varnish: status backends, drain contract, undrain', () => {
  it.each(CASES)('$proxy lists its backends, drains one for deploy, and puts it back on undrain', async ({ proxy, name, front, start }) => {
    const c1 = await tc.run({ name: `${name}-${tc.runId}-1` });
    const c2 = await tc.run({ name: `${name}-${tc.runId}-2` });
    const h1 = c1.id.slice(0, 12);
    watch = elastic(['render', '--proxy', proxy, '--service', name, '--bind', `127.0.0.1:${front}`, '--name', `${name}-${tc.runId}-*`, '--port', '80', ...(await start()), '--watch', '--wait', '50ms:300ms'], { env, timeout: 120_000 });
    await waitFor(async () => (await served(front, 6)).size === 2, 'both containers served', 30_000, 200);
    const sock = join(env.ELASTIC_RUN_DIR!, `render.${name}.sock`);
    const ip1 = await tc.ip(c1);
    // The state (what status lists) is written just after nginx took the config: wait for it.
    type Servers = Array<{ address: string; backend: string; status: string }>;
    const listed = async () => ((await requestStatus<Snapshot>(sock)).services[name] as { servers: Servers }).servers;
    await waitFor(async () => (await listed()).length === 2, 'status listing both backends', 10_000, 100);
    const servers = await listed();
    expect(servers.map((s) => s.address).sort()).toEqual([`${ip1}:80`, `${await tc.ip(c2)}:80`].sort());
    expect(servers.every((s) => s.status === 'in config')).toBe(true);

    // deploy's side of the drain contract, as a rollout calls it.
    const outcomes = await drainEverywhere({ service: name, address: ip1, port: 80 }, 10_000, { runDir: env.ELASTIC_RUN_DIR });
    expect(outcomes).toEqual([expect.objectContaining({ socket: `render.${name}`, outcome: 'drained' })]);
    expect((await served(front, 10)).has(h1)).toBe(false);

    // top's `u`: {address, port} (plus service/backend it also sends).
    // The answer comes once nginx reloaded with it (as the drain above, given 10 s): up to ~2 s at load 16 here.
    const undo = await requestStatus(sock, { op: 'action', action: 'undrain', args: { address: ip1, port: 80, service: name, backend: `docker:${h1}` } }, 10_000);
    expect(undo).toMatchObject({ ok: true, undrained: 1 });
    await waitFor(async () => (await served(front, 10)).has(h1), 'the undrained container served again', 10_000, 100);
    const after = await requestStatus<Snapshot>(sock);
    expect(after.events.some((e) => e.type === 'undrain')).toBe(true);
    await stopWatch();
  }, 120_000);
});
