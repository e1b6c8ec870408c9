import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPaths } from '../../src/engine/render.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { httpGet } from '../support/render-backends.js';

// Issue 14 item 1, nginx: the request loss left after the closing flag (a wrk read error now and
// then in CI, during removals). An old worker that takes QUIT closes every connection in
// keep-alive state at once; the flag makes responses say "Connection: close", but a request
// read before the flag went up still gets a keep-alive response, and when that response is
// slower than a fixed lead (a request stuck on a vanished backend for proxy_connect_timeout) it
// lands just before the QUIT: the client's next request meets the close (traced: ECONNRESET on a
// reused connection whose previous request took 1,059 ms, 3 ms after the write; the lead was
// shortened to 300 ms to make it frequent). Here 32 keep-alive connections each have a slow
// request in flight (2.5 s to 6.4 s, 125 ms apart: beyond the old 2.3 s lead, around the moment
// the reload comes however slow the machine) when a membership change reloads nginx; each client writes its next request
// on the same connection 200 ms after the response, without first looking for a close (as wrk
// does; what any client whose request crosses the close in flight sees). 0 may fail: the reload
// waits until every connection open at the flag has turned over. Ports 25750 and 25753 (nginx),
// 25751-25752 (backends).
const FRONT = 25750;
const FRONT_FLAG = 25753;
let dir: string;
let env: NodeJS.ProcessEnv;
const servers: Server[] = [];

function backend(port: number): Promise<void> {
  const s = createServer((req, res) => {
    const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
    setTimeout(() => res.end(`b${port}\n`), Math.min(ms, 10_000));
  });
  servers.push(s);
  return new Promise((r) => s.listen(port, '127.0.0.1', () => r()));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-nturn-'));
  // Private, as the default state directory is: the closing flag must reach nginx workers (nobody) anyway.
  await chmod(dir, 0o700);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await backend(25751);
  await backend(25752);
});

afterAll(async () => {
  for (const instance of ['nturn', 'nflag']) {
    const pid = Number(await readFile(defaultPaths(instance, 'nginx', env).pidFile, 'utf8').catch(() => '0'));
    if (pid > 1 && pidAlive(pid)) process.kill(pid, 'SIGQUIT');
    await waitFor(() => !(pid > 1 && pidAlive(pid)), 'nginx stopped', 10_000).catch(() => {});
  }
  for (const s of servers) (s.closeAllConnections(), s.close());
  await rm(dir, { recursive: true, force: true });
});

interface Response {
  status: number;
  keepAlive: boolean;
}

/** A keep-alive connection that asked once; `ask` sends the next request on it. */
function keepAlive(front: number): Promise<{ ask: () => Promise<Response> }> {
  const sock = connect(front, '127.0.0.1');
  sock.setEncoding('utf8');
  let buf = '';
  let waiter: ((r: Response) => void) | null = null;
  sock.on('data', (d: string) => {
    buf += d;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.slice(0, end);
    const len = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
    if (buf.length < end + 4 + len) return;
    buf = buf.slice(end + 4 + len);
    waiter?.({ status: Number(head.split(' ')[1]), keepAlive: !/^connection:\s*close/im.test(head) });
  });
  let closed = false; // by nginx: the answer is then status 0
  const gone = () => {
    closed = true;
    waiter?.({ status: 0, keepAlive: false });
  };
  sock.on('error', gone);
  sock.on('end', gone);
  const ask = () =>
    new Promise<Response>((resolve) => {
      if (closed) return resolve({ status: 0, keepAlive: false });
      waiter = resolve;
      sock.write('GET /id HTTP/1.1\r\nHost: t\r\n\r\n');
      setTimeout(() => resolve({ status: 0, keepAlive: false }), 5000);
    }).finally(() => (waiter = null));
  return ask().then((first) => {
    if (first.status !== 200 || !first.keepAlive) throw new Error(`keep-alive connection not set up: ${JSON.stringify(first)}`);
    return { ask: () => ask().finally(() => sock.destroy()) };
  });
}

/** One keep-alive connection: a slow request, then (if kept alive) the next one `thinkMs` later. */
function slowThenNext(slowMs: number, thinkMs: number, front = FRONT): Promise<{ first: Response; second: Response | 'reconnects' | string }> {
  return new Promise((resolve) => {
    const sock = connect(front, '127.0.0.1');
    let buf = '';
    let first: Response | null = null;
    let done = false;
    const finish = (second: Response | 'reconnects' | string) => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve({ first: first ?? { status: 0, keepAlive: false }, second });
    };
    /** A whole response at the start of buf (Content-Length bodies: nginx proxying our backends). */
    const take = (): Response | null => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return null;
      const head = buf.slice(0, end);
      const len = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return null;
      buf = buf.slice(end + 4 + len);
      return { status: Number(head.split(' ')[1]), keepAlive: !/^connection:\s*close/im.test(head) };
    };
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`GET /slow?ms=${slowMs} HTTP/1.1\r\nHost: t\r\n\r\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const r = take();
      if (!r) return;
      if (!first) {
        first = r;
        if (!r.keepAlive) return finish('reconnects');
        setTimeout(() => sock.write(`GET /id HTTP/1.1\r\nHost: t\r\n\r\n`), thinkMs);
        return;
      }
      finish(r);
    });
    sock.on('end', () => finish(first ? 'EOF before the second response' : 'EOF before the first response'));
    sock.on('error', (e: NodeJS.ErrnoException) => finish(`${e.code ?? e.message}${first ? ' on the second request' : ' on the first request'}`));
    setTimeout(() => finish('timeout'), slowMs + 15_000);
  });
}

describe('nginx reload under slow keep-alive requests', () => {
  it('a reload while 32 slow requests are in flight: every client gets both responses', async () => {
    const render = (backends: number[]) => elastic(['render', '--proxy', 'nginx', '--start', '--service', 'nturn', '--bind', `127.0.0.1:${FRONT}`, ...backends.flatMap((p) => ['--backend', `127.0.0.1:${p}`]), '--json'], { env, timeout: 60_000 });
    const r0 = await render([25751]);
    expect(r0.exitCode, String(r0.stderr)).toBe(0);
    await waitFor(async () => (await httpGet(FRONT).catch(() => '')) === 'b25751', 'nginx serves', 15_000, 100);

    const clients = Array.from({ length: 32 }, (_, i) => slowThenNext(2500 + 125 * i, 200));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    const r1 = await render([25751, 25752]);
    const reloadMs = Date.now() - t0;
    expect(r1.exitCode, String(r1.stderr)).toBe(0);
    const results = await Promise.all(clients);
    const failed = results.filter((r) => r.first.status !== 200 || (r.second !== 'reconnects' && (typeof r.second === 'string' || r.second.status !== 200)));
    expect(failed, JSON.stringify({ reloadMs, results })).toEqual([]);
    // the change is served
    await waitFor(async () => (await httpGet(FRONT).catch(() => '')) === 'b25752', 'the added backend is served', 15_000, 50);
  }, 90_000);

  it('under a private (0700) state directory the flag reaches the workers, and a first request in progress holds the reload', async () => {
    // Before: the flag sat next to the config in the state directory, which workers (nobody)
    // cannot search: every `if (-f flag)` failed with EACCES and no response ever said
    // "Connection: close". And a connection whose first request was in progress looked quiet
    // (ss: lastsnd == lastrcv, the handshake and the request in one tick), so the reload came
    // after 300 ms instead of after that request.
    const front = FRONT_FLAG;
    const render = (backends: number[]) => elastic(['render', '--proxy', 'nginx', '--start', '--service', 'nflag', '--bind', `127.0.0.1:${front}`, ...backends.flatMap((p) => ['--backend', `127.0.0.1:${p}`]), '--json'], { env, timeout: 60_000 });
    const r0 = await render([25751]);
    expect(r0.exitCode, String(r0.stderr)).toBe(0);
    await waitFor(async () => (await httpGet(front).catch(() => '')) === 'b25751', 'nginx serves', 15_000, 100);

    const idle = await keepAlive(front); // a keep-alive connection, answered once, now idle
    const slow = slowThenNext(3000, 50, front).then((r) => ({ ...r, at: Date.now() })); // a first request in progress
    await new Promise((r) => setTimeout(r, 200));
    const reload = render([25751, 25752]).then((r) => ({ r, at: Date.now() }));
    await new Promise((r) => setTimeout(r, 1000)); // the flag is up, the reload waits for the slow request
    const during = await idle.ask();
    expect(during, 'a response while the flag is up says Connection: close').toEqual({ status: 200, keepAlive: false });
    const [s, { r: r1, at: reloaded }] = await Promise.all([slow, reload]);
    expect(r1.exitCode, String(r1.stderr)).toBe(0);
    expect(s.first.status).toBe(200);
    expect(s.second === 'reconnects' || (typeof s.second !== 'string' && s.second.status === 200), JSON.stringify(s)).toBe(true);
    expect(reloaded, 'the reload came after the first request in progress was answered').toBeGreaterThanOrEqual(s.at - 300);
    expect(await readFile(defaultPaths('nflag', 'nginx', env).errorLog, 'utf8').catch(() => '')).not.toMatch(/closing.*Permission denied/);
  }, 60_000);
});
