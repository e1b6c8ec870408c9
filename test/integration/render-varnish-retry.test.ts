import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { keepAliveLoad } from '../support/keepalive-client.js';
import { startVarnishd } from '../support/render-backends.js';

// Issue 14 item 1, Varnish, the two causes of failed requests over membership changes, each made
// deterministic with local backends (render-membership-varnish.test.ts has the whole scenario):
// - a new VCL's probed backends start sick until their first probe answers: switching to it at
//   once (vcl.use right after vcl.load) answered 503 "no backend" until then. Backends here
//   answer /id after 400 ms, so that window is wide;
// - a backend that dies in the middle of a response (docker rm -f): the streamed partial
//   response cut the client's connection; and a retry could go to the same backend again.
// Ports 25002 (varnish), 25003 (admin), 25004-25006 (backends).
let dir: string;
let env: NodeJS.ProcessEnv;
let varnishPid = 0;
const servers: Array<Server | TcpServer> = [];

function slowBackend(port: number): Promise<void> {
  const s = createServer((req, res) => setTimeout(() => res.end(`p${port}\n`), req.url === '/id' ? 400 : 0));
  servers.push(s);
  return new Promise((r) => s.listen(port, '127.0.0.1', () => r()));
}

/** Answers every request with a 200 whose body is cut short (headers, 2 of 10 bytes, close). */
function cutBackend(port: number): Promise<void> {
  const s = createTcpServer((c) => {
    c.on('error', () => {});
    c.once('data', () => (c.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab'), setTimeout(() => c.destroy(), 20)));
  });
  servers.push(s);
  return new Promise((r) => s.listen(port, '127.0.0.1', () => r()));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-varnish-probe-'));
  await chmod(dir, 0o755); // varnishd compiles the VCL as its own user
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await slowBackend(25004);
  await slowBackend(25005);
  await cutBackend(25006);
});

afterAll(async () => {
  if (varnishPid > 1 && pidAlive(varnishPid)) process.kill(varnishPid, 'SIGTERM');
  await waitFor(() => !(varnishPid > 1 && pidAlive(varnishPid)), 'varnishd stopped', 10_000).catch(() => {});
  for (const s of servers) ('closeAllConnections' in s && s.closeAllConnections(), s.close());
  await rm(dir, { recursive: true, force: true });
});

describe('Varnish retries and probes', () => {
  it('a new VCL is used only once its probes found a healthy backend; a cut response is retried on another backend: 0 failed requests', async () => {
    const { pid, work } = await startVarnishd(dir, 25002, 25003);
    varnishPid = pid;
    const render = (backends: string[], check = 'http:/id') => elastic(['render', '--proxy', 'varnish', '--varnish-name', work, '--service', 'vp', '--bind', '127.0.0.1:25002', ...backends.flatMap((b) => ['--backend', b]), '--lb-check', check, '--json'], { env, timeout: 60_000 });
    const first = await render(['127.0.0.1:25004']);
    expect(first.exitCode, String(first.stderr)).toBe(0);
    // the first VCL serves once its probe passed
    await waitFor(async () => (await fetch('http://127.0.0.1:25002/id').then((r) => r.status, () => 0)) === 200, 'first VCL serves', 15_000, 100);
    const stop = new AbortController();
    const load = keepAliveLoad(25002, 60, 8, '/id', 100_000, stop.signal);
    await new Promise((r) => setTimeout(r, 500));
    const second = await render(['127.0.0.1:25004', '127.0.0.1:25005']);
    await new Promise((r) => setTimeout(r, 1500));
    stop.abort();
    const k = await load;
    expect(second.exitCode, String(second.stderr)).toBe(0);
    expect(k.requests).toBeGreaterThan(20);
    expect(k.failures, JSON.stringify({ failures: k.failures.slice(0, 5), n: k.failures.length })).toEqual([]);

    // a backend whose every response is cut (no probe to take it out): each GET is retried on
    // the other backend, never answered with a partial body
    const third = await render(['127.0.0.1:25004', '127.0.0.1:25006'], 'none');
    expect(third.exitCode, String(third.stderr)).toBe(0);
    const cut = await keepAliveLoad(25002, 4, 4, '/fast', 400);
    expect(cut.requests).toBeGreaterThan(20);
    expect(cut.failures, JSON.stringify({ failures: cut.failures.slice(0, 5), n: cut.failures.length })).toEqual([]);
  }, 90_000);
});
