import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { sendCommand } from '../../src/engine/frontends/haproxy/runtime.js';
import { defaultPaths } from '../../src/engine/render.js';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { answering, LocalBackends } from '../support/render-backends.js';

// A drain's wait for the sessions of an HAProxy backend (render --watch, tcp mode: a held
// connection is a session), and what can happen during it:
// - an undrain (the operator pressed `u` in top right after `d`) found nothing to undo, since a
//   drain was known only once it had finished, and the drain then took the backend out anyway;
//   now a drain is known from its start and an undrain cancels its wait;
// - after a reload, the sessions the previous worker still serves (until hard-stop-after) were not
//   counted: the drain read only the current worker's `show stat` and answered "drained" at once
//   (deploy then stops a backend with clients); now old workers are read through the master CLI.
// Real HAProxy, local backends. Ports 27960-27962.
const FRONT = 27962;
const NAME = 'rdwait';
const backends = new LocalBackends();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;
const held: Socket[] = [];
const sock = () => join(env.ELASTIC_RUN_DIR!, `render.${NAME}.sock`);
const action = (name: string, args: Record<string, unknown>) => requestStatus<Record<string, unknown>>(sock(), { op: 'action', action: name, args }, 30_000);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-drain-wait-'));
  await chmod(dir, 0o755);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await backends.start([27960, 27961]);
  watch = elastic(['render', '--service', NAME, '--backend', '127.0.0.1:27960', '--backend', '127.0.0.1:27961', '--bind', `127.0.0.1:${FRONT}`, '--mode', 'tcp', '--start', '--watch', '--wait', '50ms:200ms'], { env, timeout: 180_000 });
  await waitFor(async () => (await answering(FRONT, 6, '')).size === 2, 'both backends served', 30_000, 200);
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

/** Sessions on both backends (round robin): a drain has to wait for them. */
async function holdSessions(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const s = connect(FRONT, '127.0.0.1');
    await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
    held.push(s);
  }
}

describe('render (HAProxy): a drain waiting for sessions', () => {
  it('an undrain during the wait cancels the drain: the backend stays in rotation', async () => {
    await holdSessions();
    const drain = action('drain', { address: '127.0.0.1', port: 27961, timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 800));
    const t0 = Date.now();
    expect(await action('undrain', { address: '127.0.0.1', port: 27961 })).toMatchObject({ ok: true, undrained: 1 });
    // The drain answers at once (not after its 20 s timeout), not drained, and says why.
    expect(await drain).toMatchObject({ ok: true, drained: false, cancelled: true });
    expect(Date.now() - t0).toBeLessThan(10_000);
    for (const s of held.splice(0)) s.destroy();
    await new Promise((r) => setTimeout(r, 500)); // passes after the drain: none takes it out
    expect(await answering(FRONT, 12, '')).toEqual(new Set(['b27960', 'b27961']));
  }, 60_000);

  it('counts the sessions an old worker still serves after a reload', async () => {
    await holdSessions();
    // A reload (as a structural pass makes): the held sessions stay with the old worker.
    const d = defaultPaths(NAME, 'haproxy', env);
    await sendCommand(d.masterSocket, 'reload');
    await waitFor(async () => /# old workers\n\d+\s+worker/.test(await sendCommand(d.masterSocket, 'show proc')), 'an old worker serving the held sessions', 10_000, 100);
    const t0 = Date.now();
    let answered = 0;
    const drain = action('drain', { address: '127.0.0.1', port: 27961, timeoutMs: 20_000 }).finally(() => (answered = Date.now()));
    await new Promise((r) => setTimeout(r, 1500));
    expect(answered, 'the drain answered while the old worker still served its sessions').toBe(0);
    for (const s of held.splice(0)) s.destroy();
    expect(await drain).toMatchObject({ ok: true, drained: true, sessions: 0 });
    expect(answered - t0).toBeGreaterThanOrEqual(1500);
    expect(await answering(FRONT, 12, '')).toEqual(new Set(['b27960']));
  }, 60_000);
});
