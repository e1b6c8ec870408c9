import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import type { RenderService } from '../../src/engine/frontends/services.js';
import { serviceSpec } from '../../src/engine/frontends/services.js';
import { buildRenderer, defaultPaths, type RenderOptions } from '../../src/engine/render.js';
import { LocalBackends, httpGet, wrk } from '../support/render-backends.js';

// Real HAProxy 2.6 in master-worker mode, real busybox httpd backends, real wrk load.
// Ports: frontends 18410-18411, backends 18460-18463 (render's range is 18400-18499).
const FRONT = 18410;
const BUSY = 18411;
const PORTS = [18460, 18461, 18462, 18463];
const backends = new LocalBackends();
let dir: string;
let env: NodeJS.ProcessEnv;

const b = (port: number) => staticBackend('127.0.0.1', port, 'web');
const service = (extra: Partial<Parameters<typeof serviceSpec>[1]> = {}): RenderService => ({
  spec: serviceSpec('web', { bind: `127.0.0.1:${FRONT}`, 'lb-check': 'tcp', ...extra }),
  discover: {},
});
const options = (extra: Partial<RenderOptions> = {}): RenderOptions => ({
  instance: 'itest',
  proxy: 'haproxy',
  services: [service()],
  start: true,
  guard: { minBackends: 1, maxChangePct: 50, force: false },
  env,
  ...extra,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-haproxy-'));
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await backends.start(PORTS);
});

afterAll(async () => {
  const d = defaultPaths('itest', 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop();
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('render with HAProxy', () => {
  it('starts HAProxy in master-worker mode and serves the backends', async () => {
    const r = await (await buildRenderer(options())).sync({ web: [b(18460), b(18461)] });
    expect(r.action).toBe('start');
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await httpGet(FRONT));
    expect([...seen].sort()).toEqual(['b18460', 'b18461']);
  });

  it('under wrk load, 30 membership changes (runtime API) and 5 structural reloads fail no request', async () => {
    const renderer = await buildRenderer(options());
    // Each step adds or removes one backend, never fewer than 2 in rotation.
    const sets = [[0, 1, 2], [1, 2], [1, 2, 3], [2, 3], [2, 3, 0], [3, 0], [3, 0, 1], [0, 1]];
    // 8 connections: the busybox httpd backends listen with a backlog of 9 (more in flight to
    // one of them overflow its accept queue, and SYNs wait 1 s to be resent: the app's limit).
    const load = wrk(FRONT, 9, 8);
    const actions: string[] = [];
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 30; i++) {
      const set = sets[i % sets.length]!.map((k) => b(PORTS[k]!));
      actions.push((await renderer.sync({ web: set })).action);
      await new Promise((r) => setTimeout(r, 120));
    }
    for (let i = 0; i < 5; i++) {
      // A different check interval is a structural change: a seamless master-worker reload.
      const structural = await buildRenderer(options({ services: [service({ 'lb-check-interval': 1000 + 100 * i })] }));
      actions.push((await structural.sync({ web: [b(18460), b(18461)] })).action);
      await new Promise((r) => setTimeout(r, 400));
    }
    const result = await load;
    expect(actions.slice(0, 30).every((a) => a === 'runtime')).toBe(true);
    expect(actions.slice(30)).toEqual(['reload', 'reload', 'reload', 'reload', 'reload']);
    expect(result.requests).toBeGreaterThan(1000);
    expect({ non2xx: result.non2xx, socketErrors: result.socketErrors }).toEqual({ non2xx: 0, socketErrors: 0 });
  });

  it('a config HAProxy rejects is an error with the line; the live config is untouched', async () => {
    const renderer = await buildRenderer(options());
    const live = await readFile(renderer.opts.output, 'utf8');
    const bad = join(dir, 'bad.cfg.hbs');
    const source = (await readFile(new URL('../../templates/haproxy.cfg.hbs', import.meta.url), 'utf8')).replace('defaults\n', 'defaults\n  bogus-directive 1\n');
    await import('node:fs/promises').then((fs) => fs.writeFile(bad, source));
    const broken = await buildRenderer(options({ template: bad }));
    const err = await broken.sync({ web: [b(18460), b(18461), b(18462)] }).catch((e: Error) => e);
    expect(String((err as Error).message)).toMatch(/haproxy rejected .*haproxy\.cfg:\d+: .*bogus-directive.*\(line: bogus-directive 1\)/);
    expect(await readFile(renderer.opts.output, 'utf8')).toBe(live);
    expect(await httpGet(FRONT)).toMatch(/^b1846\d$/);
  });

  it('zero backends with --min-backends 1 is refused and the old config keeps serving', async () => {
    const renderer = await buildRenderer(options());
    const live = await readFile(renderer.opts.output, 'utf8');
    const err = await renderer.sync({ web: [] }, { throwOnRefusal: true }).catch((e: { exitCode?: number; message: string }) => e);
    expect((err as { exitCode?: number }).exitCode).toBe(6);
    expect((err as Error).message).toMatch(/below --min-backends 1/);
    expect(renderer.counters.refusals).toBe(1);
    expect(await readFile(renderer.opts.output, 'utf8')).toBe(live);
    expect(await httpGet(FRONT)).toMatch(/^b1846\d$/);
  });

  it('a reload HAProxy cannot complete (port taken) restores the last good file and keeps serving', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(BUSY, '127.0.0.1', () => r()));
    try {
      const renderer = await buildRenderer(options());
      const live = await readFile(renderer.opts.output, 'utf8');
      const moved = await buildRenderer(options({ services: [service({ bind: `127.0.0.1:${BUSY}` })] }));
      const err = await moved.sync({ web: [b(18460), b(18461)] }).catch((e: Error) => e);
      // Refused before any reload (runtime/ports.ts): a failed HAProxy bind would pause every listener.
      expect(String((err as Error).message)).toMatch(new RegExp(`^bind port in use: 127\\.0\\.0\\.1:${BUSY} is already served by pid ${process.pid} `));
      expect(await readFile(renderer.opts.output, 'utf8')).toBe(live);
      expect(await httpGet(FRONT)).toMatch(/^b1846\d$/);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});
