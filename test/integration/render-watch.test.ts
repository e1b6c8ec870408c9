import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { defaultPaths, requestDrain } from '../../src/engine/render.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { elastic } from '../support/cli.js';
import { TestContainers, requireDocker, waitFor } from '../support/docker.js';
import { httpGet } from '../support/render-backends.js';

// `elastic render --watch --start` as operators run it: the real binary, real containers of
// elastic-test/web:1 (GET /id answers the container hostname), real HAProxy. Frontend port 18420.
const FRONT = 18420;
const tc = new TestContainers();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;
let stderr = '';

const hostname = async (c: { id: string }) => c.id.slice(0, 12);
const served = async (n: number) => {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await httpGet(FRONT));
  return seen;
};

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-watch-'));
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
});

afterAll(async () => {
  if (watch) {
    watch.kill('SIGTERM');
    await watch;
  }
  const d = defaultPaths('rw', 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop();
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe('render --watch', () => {
  it('follows containers, serves status and drain, and restarts a killed HAProxy', async () => {
    const c1 = await tc.run({ name: `render-${tc.runId}-1` });
    const c2 = await tc.run({ name: `render-${tc.runId}-2` });
    watch = elastic(
      ['render', '--service', 'rw', '--bind', `127.0.0.1:${FRONT}`, '--name', `render-${tc.runId}-*`, '--port', '80', '--start', '--watch', '--wait', '50ms:500ms', '--lb-check-interval', '500'],
      { env, timeout: 180_000 },
    );
    watch.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const want = new Set([await hostname(c1), await hostname(c2)]);
    await waitFor(async () => [...want].every(async () => true) && (await served(6)).size === 2, 'both containers served', 20_000, 200);
    expect(await served(6)).toEqual(want);

    // A new container is served without a reload (runtime API).
    const c3 = await tc.run({ name: `render-${tc.runId}-3` });
    const h3 = await hostname(c3);
    await waitFor(async () => (await served(6)).has(h3), 'the new container served', 20_000, 100);
    const sock = join(env.ELASTIC_RUN_DIR!, 'render.rw.sock');
    // The new backend is served before the pass ends (runtime API first, then the file is written).
    const snap = (await waitFor(async (): Promise<Snapshot | undefined> => {
      const s = await requestStatus<Snapshot>(sock);
      return (s.services.rw as { counters: { runtimeOps: number } }).counters.runtimeOps > 0 ? s : undefined;
    }, 'the runtime pass recorded', 10_000, 50))!;
    const svc = snap.services.rw as { counters: { reloads: number; runtimeOps: number; starts: number }; servers: Array<{ backend: string | null; hits: number; status: string }> };
    expect(snap.kind).toBe('render');
    expect(svc.counters.runtimeOps).toBeGreaterThan(0);
    expect(svc.counters.starts).toBe(1);
    expect(svc.servers.filter((s) => s.backend).length).toBe(3);
    expect(svc.servers.reduce((n, s) => n + s.hits, 0)).toBeGreaterThan(0);

    // Drain: take c1 out, wait for 0 sessions; it is no longer served.
    const drained = await requestDrain(sock, 'rw', `docker:${await hostname(c1)}`, 10_000);
    expect(drained).toMatchObject({ ok: true, drained: true });
    expect((await served(9)).has(await hostname(c1))).toBe(false);
    // The shared drain contract (deploy, top): {address, port}, no service name needed.
    const byAddress = await requestStatus(sock, { op: 'action', action: 'drain', args: { address: await tc.ip(c2), port: 80, timeoutMs: 10_000 } });
    expect(byAddress).toMatchObject({ ok: true, drained: true, services: ['rw'] });
    expect((await served(9)).has(await hostname(c2))).toBe(false);

    // A drain answers once its passes ran (frontends/drain.ts): nothing follows it, so the restart
    // below is the monitor's doing.
    const events = (await requestStatus<Snapshot>(sock)).events;
    expect(events.at(-1)?.type).toBe('drain');
    expect(events.at(-2)?.type).toBe('runtime');

    // Kill HAProxy's master (our pid, from our pidfile): render reports it and starts it again.
    const d = defaultPaths('rw', 'haproxy', env);
    const pid = Number((await readFile(d.pidFile, 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !pidAlive(pid), 'haproxy master gone', 5000);
    await waitFor(async () => {
      const now = Number((await readFile(d.pidFile, 'utf8')).trim());
      return now !== pid && pidAlive(now) && (await served(3)).size > 0;
    }, 'haproxy restarted and serving', 20_000, 100);
    // HAProxy serves a moment before render's pass that started it ends and counts the start.
    const starts = async () => ((await requestStatus<Snapshot>(sock)).services.rw as { counters: { starts: number } }).counters.starts;
    await waitFor(async () => (await starts()) >= 2, 'the restart counted', 10_000, 50);
    const after = await requestStatus<Snapshot>(sock);
    expect(after.events.some((e) => e.type === 'error' && /not running; restart/.test(e.message))).toBe(true);
    expect((after.services.rw as { counters: { starts: number } }).counters.starts).toBe(2);
    expect(stderr).toMatch(/haproxy (is|was) not running; restart/);

    watch.kill('SIGTERM');
    const r = await watch;
    watch = null;
    expect(r.exitCode).toBe(0);
  });
});
