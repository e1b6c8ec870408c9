import { mkdtemp, chmod, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainEverywhere } from '../../src/engine/deploy/drain.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { defaultPaths } from '../../src/engine/render.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { elastic } from '../support/cli.js';
import { TestContainers, requireDocker, waitFor } from '../support/docker.js';
import { httpGet } from '../support/render-backends.js';

// Issue 14 item 8 (render): an nginx render shows its backends on its status socket (what top
// lists), answers deploy's drain contract (not "not ours"), and answers `undrain`. Real nginx,
// real containers, `render --watch` as operators run it. Port 22540.
const FRONT = 22540;
const tc = new TestContainers();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;

const served = async (n: number) => {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await httpGet(FRONT).catch(() => ''));
  return seen;
};

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-drain-'));
  await chmod(dir, 0o755);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
});

afterAll(async () => {
  if (watch) {
    watch.kill('SIGTERM');
    await watch;
  }
  const pid = Number(await readFile(defaultPaths('rdn', 'nginx', env).pidFile, 'utf8').catch(() => '0'));
  if (pid > 1 && pidAlive(pid)) process.kill(pid, 'SIGQUIT');
  await waitFor(() => !(pid > 1 && pidAlive(pid)), 'nginx stopped', 10_000).catch(() => {});
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe('render --proxy nginx: status backends, drain contract, undrain', () => {
  it('lists its backends, drains one for deploy, and puts it back on undrain', async () => {
    const c1 = await tc.run({ name: `rdn-${tc.runId}-1` });
    const c2 = await tc.run({ name: `rdn-${tc.runId}-2` });
    const h1 = c1.id.slice(0, 12);
    watch = elastic(['render', '--proxy', 'nginx', '--service', 'rdn', '--bind', `127.0.0.1:${FRONT}`, '--name', `rdn-${tc.runId}-*`, '--port', '80', '--start', '--watch', '--wait', '50ms:300ms'], { env, timeout: 120_000 });
    await waitFor(async () => (await served(6)).size === 2, 'both containers served', 30_000, 200);
    const sock = join(env.ELASTIC_RUN_DIR!, 'render.rdn.sock');
    const ip1 = await tc.ip(c1);
    // The state (what status lists) is written just after nginx took the config: wait for it.
    type Servers = Array<{ address: string; backend: string; status: string }>;
    const listed = async () => ((await requestStatus<Snapshot>(sock)).services.rdn as { servers: Servers }).servers;
    await waitFor(async () => (await listed()).length === 2, 'status listing both backends', 10_000, 100);
    const servers = await listed();
    expect(servers.map((s) => s.address).sort()).toEqual([`${ip1}:80`, `${await tc.ip(c2)}:80`].sort());
    expect(servers.every((s) => s.status === 'in config')).toBe(true);

    // deploy's side of the drain contract, as a rollout calls it.
    const outcomes = await drainEverywhere({ service: 'rdn', address: ip1, port: 80 }, 10_000, { runDir: env.ELASTIC_RUN_DIR });
    expect(outcomes).toEqual([expect.objectContaining({ socket: 'render.rdn', outcome: 'drained' })]);
    expect((await served(10)).has(h1)).toBe(false);

    // top's `u`: {address, port} (plus service/backend it also sends).
    // The answer comes once nginx reloaded with it (as the drain above, given 10 s): up to ~2 s at load 16 here.
    const undo = await requestStatus(sock, { op: 'action', action: 'undrain', args: { address: ip1, port: 80, service: 'rdn', backend: `docker:${h1}` } }, 10_000);
    expect(undo).toMatchObject({ ok: true, undrained: 1 });
    await waitFor(async () => (await served(10)).has(h1), 'the undrained container served again', 10_000, 100);
    const after = await requestStatus<Snapshot>(sock);
    expect(after.events.some((e) => e.type === 'undrain')).toBe(true);
  }, 120_000);
});
