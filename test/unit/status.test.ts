import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listStatusSockets, requestStatus, StatusServer, streamStatus } from '../../src/engine/runtime/status.js';

const dirs: string[] = [];
const servers: StatusServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function serve(name: string, state: { n: number }) {
  const dir = await mkdtemp(join(tmpdir(), 'elastic-status-'));
  dirs.push(dir);
  const server = new StatusServer({
    kind: 'test',
    name,
    dir,
    config: { port: 80 },
    services: () => ({ web: { backends: state.n } }),
    actions: { bump: async (args) => ({ n: (state.n += Number(args.by ?? 1)) }) },
  });
  servers.push(server);
  await server.listen();
  return { dir, server };
}

describe('status sockets', () => {
  it('answers a snapshot, is listed in the registry, and is private to its owner', async () => {
    const { dir, server } = await serve('a', { n: 3 });
    server.event('added', 'backend 198.18.0.2:80\n\u001b[2J', 'web');
    const snap = await requestStatus(server.path);
    expect(snap).toMatchObject({ v: 1, kind: 'test', name: 'a', pid: process.pid, config: { port: 80 }, services: { web: { backends: 3 } } });
    expect(snap.events[0]!.message).toBe('backend 198.18.0.2:80??[2J');
    expect(await listStatusSockets(dir)).toEqual([{ kind: 'test', name: 'a', path: server.path }]);
    expect((await stat(server.path)).mode & 0o777).toBe(0o600);
  });

  it('streams a snapshot per change and runs actions', async () => {
    const state = { n: 1 };
    const { server } = await serve('b', state);
    const ac = new AbortController();
    const seen: number[] = [];
    const done = (async () => {
      for await (const s of streamStatus(server.path, 60_000, ac.signal)) {
        seen.push((s.services.web as { backends: number }).backends);
        if (seen.length === 2) ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    expect(await requestStatus(server.path, { op: 'action', action: 'bump', args: { by: 4 } })).toEqual({ ok: true, n: 5 });
    server.notify();
    await done;
    expect(seen).toEqual([1, 5]);
    expect(await requestStatus(server.path, { op: 'action', action: 'nope' })).toMatchObject({ ok: false });
  });

  it('refuses a second live server with the same name, and replaces a stale socket', async () => {
    const { dir } = await serve('c', { n: 0 });
    const twin = new StatusServer({ kind: 'test', name: 'c', dir, services: () => ({}) });
    await expect(twin.listen()).rejects.toThrow(/already running/);
  });
});
