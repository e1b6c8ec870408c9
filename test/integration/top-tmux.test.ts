import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { BIN } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers, waitFor } from '../support/docker.js';
import { listStatusSockets } from '../../src/engine/runtime/status.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * `elastic top` in a real terminal (tmux, 80x24) against real running elastic processes: a
 * `map-image --watch` (kernel DNAT to two containers of a test-only image tag) and a `proxy edge`
 * that starts `proxy node` instances of a tiny app. Traffic is bounded; the captured pane must
 * show the backends and counters that move.
 */
const tc = new TestContainers();
const repo = `elastic-top-web-${tc.runId}`;
const image = `${repo}:1`;
const MAP_PORT = 18730;
const EDGE_PORT = 18731;
const session = `elastic-top-${process.pid}`;
/** A private tmux server (its own socket), so an operator's own tmux sessions are never touched. */
const tmuxSocket = `elastic-test-${process.pid}`;
const tmux = (args: string[], opts: { reject?: boolean } = {}) => execa('tmux', ['-L', tmuxSocket, ...args], opts);
const stateDir = ownedStateDir('elastic-top-state-');
const runDir = mkdtempSync(join(tmpdir(), 'elastic-top-run-'));
const appDir = mkdtempSync(join(tmpdir(), 'elastic-top-app-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const children: ResultPromise[] = [];
let ips: string[] = [];

let lastPane = '';
async function pane(): Promise<string> {
  lastPane = String((await tmux(['capture-pane', '-p', '-t', session])).stdout);
  return lastPane;
}

function get(host: string, port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Bounded load: at most `count` requests and `ms` milliseconds (or until `stop.done`), a few at a time. */
async function traffic(host: string, port: number, count: number, ms: number, stop: { done: boolean }): Promise<number> {
  const end = Date.now() + ms;
  let ok = 0;
  for (let i = 0; i < count && Date.now() < end && !stop.done; i += 4) {
    const codes = await Promise.all([0, 1, 2, 3].map(() => get(host, port, '/id')));
    ok += codes.filter((c) => c === 200).length;
  }
  return ok;
}

/** The pane's row for `prefix` (after the cursor column), split into cells. */
const row = (text: string, prefix: string) => text.split('\n').find((l) => l.slice(2).startsWith(prefix))?.slice(2).trim().split(/\s+/) ?? [];

beforeAll(async () => {
  await requireDocker();
  await execa('tmux', ['-V']); // fails loudly when tmux is missing
  await docker.getImage(TEST_IMAGE).tag({ repo, tag: '1' });
  for (let i = 0; i < 2; i++) {
    const c = await tc.run({ image, name: `elastic-top-${tc.runId}-${i}` });
    ips.push(await tc.ip(c));
  }
  ips = ips.sort();
  const map = execa(process.execPath, [BIN, 'map-image', String(MAP_PORT), image, '80', '--watch', '--remove-on-exit'], { env, reject: false, stdin: 'ignore' });
  children.push(map);
  writeFileSync(join(appDir, 'app.cjs'), "require('http').createServer((q, r) => r.end('app\\n')).listen(Number(process.env.PORT), '127.0.0.1');\n");
  const edge = execa(
    process.execPath,
    [BIN, 'proxy', 'edge', '--http-port', String(EDGE_PORT), '--default-route', 'app', '--name', 'top-e2e', '--', process.execPath, BIN, 'proxy', 'node', '--', process.execPath, join(appDir, 'app.cjs')],
    { env, reject: false, stdin: 'ignore' },
  );
  children.push(edge);
  await waitFor(async () => {
    const kinds = (await listStatusSockets(runDir)).map((s) => s.kind);
    return kinds.includes('map-image') && kinds.includes('edge');
  }, 'map-image and edge status sockets', 30_000, 100);
  // `env -u CI`: the test runner's CI=true would make top treat the tmux terminal as a pipe (print once, exit).
  await tmux(['new-session', '-d', '-s', session, '-x', '80', '-y', '24', '-e', `ELASTIC_RUN_DIR=${runDir}`, '-e', `ELASTIC_STATE_DIR=${stateDir}`, '-e', 'LANG=C.UTF-8', `env -u CI ${process.execPath} ${BIN} top --interval 0.5 --no-docker`]);
});

afterAll(async () => {
  await tmux(['kill-session', '-t', session], { reject: false });
  for (const c of children) if (c.pid) c.kill('SIGTERM');
  await Promise.all(children.map((c) => Promise.race([c, new Promise((r) => setTimeout(r, 10_000))])));
  for (const c of children) if (c.pid && c.exitCode === undefined) c.kill('SIGKILL');
  await tc.cleanup();
  await docker.getImage(image).remove().catch(() => {});
  for (const d of [stateDir, runDir, appDir]) rmSync(d, { recursive: true, force: true });
});

describe('elastic top in tmux (80x24) against map-image --watch and proxy edge', () => {
  it('shows the mapping, the route and the backends; counters move under traffic', async () => {
    onTestFailed(() => console.error(`last captured pane:\n${lastPane}`));
    let text = String(await waitFor(async () => {
      const t = await pane();
      return t.includes(`tcp-${MAP_PORT}`) && /^[> ] app\s+edge/m.test(t) ? t : null;
    }, 'the overview with the mapping and the edge route', 20_000, 200));
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^elastic top {2}2 sources {2}2 services {2}2 backends/);
    expect(row(text, `tcp-${MAP_PORT}`).slice(0, 3)).toEqual([`tcp-${MAP_PORT}`, 'map-image', '2']);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(80);

    // Traffic through the kernel mapping (to this host's docker bridge address) and the edge.
    const stop = { done: false };
    const load = Promise.all([traffic('198.18.0.1', MAP_PORT, 4000, 25_000, stop), traffic('127.0.0.1', EDGE_PORT, 2000, 25_000, stop)]);
    text = String(await waitFor(async () => {
      const t = await pane();
      const map = row(t, `tcp-${MAP_PORT}`);
      const route = row(t, 'app');
      return map[3] && map[3] !== '-' && map[3] !== '0' && route[3] && route[3] !== '-' && route[3] !== '0' ? t : null;
    }, 'packet and request rates above zero', 15_000, 200));
    expect(row(text, `tcp-${MAP_PORT}`)[4]).toBe('pkt');
    expect(row(text, 'app')[4]).toBe('req');

    // The backends view: both containers with moving packet counters.
    await tmux(['send-keys', '-t', session, '2']);
    text = String(await waitFor(async () => {
      const t = await pane();
      return ips.every((ip) => {
        const r = row(t, `${ip}:80`);
        return r[1] === `tcp-${MAP_PORT}` && r[4] !== undefined && r[4] !== '-' && r[4] !== '0';
      })
        ? t
        : null;
    }, `both containers (${ips.join(', ')}) with packets/s`, 15_000, 200));
    expect(text.split('\n')[1]).toMatch(/\[2 Backends\]/);
    stop.done = true;
    const [okMap, okEdge] = await load;
    expect(okMap).toBeGreaterThan(0);
    expect(okEdge).toBeGreaterThan(0);

    // It follows a resize: a narrower, shorter window gets a frame that fits it.
    await tmux(['resize-window', '-t', session, '-x', '60', '-y', '16']);
    text = String(await waitFor(async () => {
      const t = await pane();
      const ls = t.split('\n');
      return ls[0]?.startsWith('elastic top') && ls.every((l) => l.length <= 60) && /^\s+ADDRESS\s+SERVICE/m.test(t) ? t : null;
    }, 'a 60-column frame after the resize', 10_000, 200));
    expect(text.split('\n').filter((l) => l.trim()).length).toBeLessThanOrEqual(16);

    // q quits and gives the terminal back.
    await tmux(['send-keys', '-t', session, 'q']);
    await waitFor(async () => (await tmux(['has-session', '-t', session], { reject: false })).exitCode !== 0, 'top to exit on q', 10_000, 100);
  });
});
