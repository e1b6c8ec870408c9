import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainEverywhere } from '../../src/engine/deploy/drain.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { TestContainers, requireDocker, waitFor } from '../support/docker.js';
import { httpGet } from '../support/render-backends.js';

// A drain in progress and a new backend at the same time (what a rolling deploy does when the
// render is slow to see the new replica: seen in CI as "render...: not ours" on every drain). The
// drained backend's slot used to go to the new backend in the same pass: the drain then found its
// slot "ready" (not draining) and failed, and its closing `maint` would have disabled the new
// backend. Real HAProxy (tcp mode, so a held connection is a session), real containers. Port 22545.
const FRONT = 22545;
const tc = new TestContainers();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;
const held: Socket[] = [];

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-drain-slot-'));
  await chmod(dir, 0o755);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
});

afterAll(async () => {
  for (const s of held) s.destroy();
  if (watch) {
    watch.kill('SIGTERM');
    await watch;
  }
  const d = defaultPaths('rds', 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
});

const served = async (n: number) => {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await httpGet(FRONT).catch(() => ''));
  return seen;
};

describe('render (HAProxy): a drained backend keeps its slot until it is gone', () => {
  it('a backend added while another drains is served, and the drain completes', async () => {
    const c = [await tc.run({ name: `rds-${tc.runId}-1` }), await tc.run({ name: `rds-${tc.runId}-2` })];
    watch = elastic(['render', '--service', 'rds', '--bind', `127.0.0.1:${FRONT}`, '--mode', 'tcp', '--name', `rds-${tc.runId}-*`, '--port', '80', '--start', '--watch', '--wait', '50ms:200ms'], { env, timeout: 120_000 });
    await waitFor(async () => (await served(6)).size === 2, 'both containers served', 30_000, 200);

    // Sessions on both backends (round robin): the drain has to wait for them.
    for (let i = 0; i < 4; i++) {
      const s = connect(FRONT, '127.0.0.1');
      await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
      held.push(s);
    }
    const ip1 = await tc.ip(c[0]!);
    const draining = drainEverywhere({ service: 'rds', address: ip1, port: 80 }, 15_000, { runDir: env.ELASTIC_RUN_DIR });
    await new Promise((r) => setTimeout(r, 500));
    const c3 = await tc.run({ name: `rds-${tc.runId}-3` });
    const h3 = c3.id.slice(0, 12);
    await waitFor(async () => (await served(6)).has(h3), 'the new container served while the other drains', 20_000, 200);
    for (const s of held) s.destroy();
    const outcomes = await draining;
    expect(outcomes).toEqual([expect.objectContaining({ socket: 'render.rds', outcome: 'drained' })]);

    // The drain's closing step did not touch the new backend: it is still served; the drained one is not.
    const after = await served(12);
    expect(after.has(h3)).toBe(true);
    expect(after.has(c[0]!.id.slice(0, 12))).toBe(false);
  }, 120_000);
});
