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
import { httpGet, LocalBackends } from '../support/render-backends.js';

// A drain after a reload: the sessions the previous worker still serves (a reload leaves it
// running its connections until hard-stop-after) were not counted. The drain read only the
// current worker's `show stat`, answered "drained, 0 sessions" at once, and deploy would then stop
// a backend that still had clients. Now old workers are read through the master CLI (@!PID).
// Real HAProxy (tcp mode: a held connection is a session), local backends. Ports 27975-27977.
const FRONT = 27977;
const NAME = 'rdold';
const backends = new LocalBackends();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;
const held: Socket[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-drain-old-'));
  await chmod(dir, 0o755);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await backends.start([27975, 27976]);
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

describe('render (HAProxy): a drain counts the sessions of old workers', () => {
  it('waits for a session the pre-reload worker still serves', async () => {
    watch = elastic(['render', '--service', NAME, '--backend', '127.0.0.1:27975', '--backend', '127.0.0.1:27976', '--bind', `127.0.0.1:${FRONT}`, '--mode', 'tcp', '--start', '--watch', '--wait', '50ms:200ms'], { env, timeout: 120_000 });
    await waitFor(async () => (await served(6)).size === 2, 'both backends served', 30_000, 200);
    for (let i = 0; i < 4; i++) {
      const s = connect(FRONT, '127.0.0.1');
      await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
      held.push(s);
    }
    // A reload (as a structural pass makes): the held sessions stay with the old worker.
    const d = defaultPaths(NAME, 'haproxy', env);
    await sendCommand(d.masterSocket, 'reload');
    await waitFor(async () => /# old workers\n\d+\s+worker/.test(await sendCommand(d.masterSocket, 'show proc')), 'an old worker serving the held sessions', 10_000, 100);

    const sock = join(env.ELASTIC_RUN_DIR!, `render.${NAME}.sock`);
    const t0 = Date.now();
    let answered = 0;
    const drain = requestStatus<Record<string, unknown>>(sock, { op: 'action', action: 'drain', args: { address: '127.0.0.1', port: 27976, timeoutMs: 20_000 } }, 30_000).finally(() => (answered = Date.now()));
    await new Promise((r) => setTimeout(r, 1500));
    expect(answered, 'the drain answered while the old worker still served its sessions').toBe(0);
    for (const s of held.splice(0)) s.destroy();
    expect(await drain).toMatchObject({ ok: true, drained: true, sessions: 0 });
    expect(answered - t0).toBeGreaterThanOrEqual(1500);
    expect(await served(12)).toEqual(new Set(['b27975']));
  }, 120_000);
});
