import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { httpGet, LocalBackends } from '../support/render-backends.js';

// An undrain that comes while a drain waits for the backend's sessions (the operator pressed `u`
// in top right after `d`). The undrain found nothing to undo (a drain was known only once it had
// finished), and the drain then took the backend out anyway: the operator's undrain was lost.
// Now a drain is known from its start, an undrain cancels its wait, and the backend stays in.
// Real HAProxy (tcp mode: a held connection is a session), local backends. Ports 27960-27962.
const FRONT = 27962;
const NAME = 'rundw';
const backends = new LocalBackends();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;
const held: Socket[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-undrain-wait-'));
  await chmod(dir, 0o755);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await backends.start([27960, 27961]);
});

afterAll(async () => {
  for (const s of held) s.destroy();
  if (watch) {
    watch.kill('SIGTERM');
    await watch.catch(() => {});
  }
  const d = defaultPaths(NAME, 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
});

const served = async (n: number) => {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await httpGet(FRONT).catch(() => ''));
  return seen;
};

describe('render (HAProxy): an undrain during the wait for sessions', () => {
  it('cancels the drain: the backend stays in rotation', async () => {
    watch = elastic(['render', '--service', NAME, '--backend', '127.0.0.1:27960', '--backend', '127.0.0.1:27961', '--bind', `127.0.0.1:${FRONT}`, '--mode', 'tcp', '--start', '--watch', '--wait', '50ms:200ms'], { env, timeout: 120_000 });
    await waitFor(async () => (await served(6)).size === 2, 'both backends served', 30_000, 200);
    // Sessions on both backends (round robin): the drain has to wait for them.
    for (let i = 0; i < 4; i++) {
      const s = connect(FRONT, '127.0.0.1');
      await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
      held.push(s);
    }
    const sock = join(env.ELASTIC_RUN_DIR!, `render.${NAME}.sock`);
    const drain = requestStatus<Record<string, unknown>>(sock, { op: 'action', action: 'drain', args: { address: '127.0.0.1', port: 27961, timeoutMs: 20_000 } }, 30_000);
    await new Promise((r) => setTimeout(r, 800));
    const t0 = Date.now();
    const undrain = await requestStatus<Record<string, unknown>>(sock, { op: 'action', action: 'undrain', args: { address: '127.0.0.1', port: 27961 } }, 30_000);
    expect(undrain).toMatchObject({ ok: true, undrained: 1 });
    // The drain answers at once (not after its 20 s timeout), not drained, and says why.
    expect(await drain).toMatchObject({ ok: true, drained: false, cancelled: true });
    expect(Date.now() - t0).toBeLessThan(10_000);
    for (const s of held.splice(0)) s.destroy();
    await new Promise((r) => setTimeout(r, 500)); // passes after the drain: none takes it out
    expect(await served(12)).toEqual(new Set(['b27960', 'b27961']));
  }, 120_000);
});
