import { afterAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import type { RouteView } from '../../src/engine/proxy.js';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { appCommand, FAST_APP, get, TEST_TOKEN } from '../support/proxy.js';

/**
 * The edge token never reaches an app, and a node's credential is good for its route only.
 * Built binary, real processes, the route token derived with real openssl as docs/proxy.md says.
 * Ports 23030-23039.
 */
const ENV_APP = fileURLToPath(new URL('../fixtures/proxy/env-app.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'elastic-proxy-secrets-'));
const env = { CI: 'true', ELASTIC_RUN_DIR: join(dir, 'run'), ELASTIC_STATE_DIR: join(dir, 'state') };
const procs: ResultPromise[] = [];
afterAll(async () => {
  for (const p of procs) if (p.exitCode === null && p.pid) process.kill(p.pid, 'SIGTERM');
  await Promise.all(procs.map((p) => p.catch(() => {})));
  rmSync(dir, { recursive: true, force: true });
});

function start(args: string[], extraEnv: Record<string, string>) {
  const proc = execa(process.execPath, [BIN, ...args], { reject: false, stdin: 'ignore', env: { ...env, ...extraEnv } });
  procs.push(proc);
  return { proc, out: new LineReader(proc.stdout!), err: new LineReader(proc.stderr!) };
}

/** The documented derivation, with openssl. */
async function routeTokenByOpenssl(token: string, route: string): Promise<string> {
  const r = await execa('sh', ['-c', `printf 'elastic-edge/route:%s' "$ROUTE" | openssl dgst -sha256 -hmac "$TOKEN" -r | cut -c1-64`], { env: { ROUTE: route, TOKEN: token } });
  return String(r.stdout).trim();
}

const routeOf = async (name: string, route: string) => (await requestStatus<Snapshot>(join(env.ELASTIC_RUN_DIR, `edge.${name}.sock`))).services[route] as RouteView;

describe('edge secrets', () => {
  it('an app started under a node gets PORT and ELASTIC_ROUTE, never the token; the node holds a route token only', async () => {
    const port = 23030;
    const node = [process.execPath, BIN, 'proxy', 'node', '--', ...appCommand(ENV_APP)];
    const e = start(['proxy', 'edge', '--json', '-p', `${port}=web`, '--name', 'sec1', '--', ...node], { ELASTIC_EDGE_TOKEN: TEST_TOKEN });
    await e.out.json((l: { type?: string }) => l.type === 'listening', 'the listening line');
    const reply = await get(port);
    expect(reply.status).toBe(200);
    const app = JSON.parse(reply.body) as { pid: number; env: Record<string, string> };
    expect(app.env.PORT).toMatch(/^\d+$/);
    expect(app.env.ELASTIC_ROUTE).toBe('web');
    expect(Object.keys(app.env).filter((k) => k.startsWith('ELASTIC_'))).toEqual(['ELASTIC_ROUTE']);
    const scoped = await routeTokenByOpenssl(TEST_TOKEN, 'web');
    for (const v of Object.values(app.env)) {
      expect(v).not.toContain(TEST_TOKEN);
      expect(v).not.toContain(scoped);
    }
    // The node the edge started was given the token of its route, not the edge's.
    const nodePid = (await routeOf('sec1', 'web')).nodeList[0]!.pid;
    const nodeEnv = readFileSync(`/proc/${nodePid}/environ`, 'utf8').split('\0');
    expect(nodeEnv).toContain(`ELASTIC_EDGE_TOKEN=${scoped}`);
    expect(nodeEnv.join('\n')).not.toContain(TEST_TOKEN);
  });

  it('a route token serves its own route only; the edge token serves any', async () => {
    const [pa, pb] = [23031, 23032];
    const e = start(['proxy', 'edge', '--json', '-p', `${pa}=a`, '-p', `${pb}=b`, '--name', 'sec2'], { ELASTIC_EDGE_TOKEN: TEST_TOKEN });
    const ready = await e.out.json<{ type: string; nodePort: number }>((l) => l.type === 'listening', 'the listening line');
    const edgeAddr = `127.0.0.1:${ready.nodePort}`;
    const tokenA = await routeTokenByOpenssl(TEST_TOKEN, 'a');
    // The token of route a, used for route b: refused, the node exits 1.
    const wrong = start(['proxy', 'node', '--edge', edgeAddr, '--route', 'b', '--', ...appCommand(FAST_APP)], { ELASTIC_EDGE_TOKEN: tokenA });
    const w = await wrong.proc;
    expect(w.exitCode).toBe(1);
    expect(String(w.stderr)).toMatch(/refused our token/);
    // The same token for route a: served.
    start(['proxy', 'node', '--edge', edgeAddr, '--route', 'a', '--', ...appCommand(FAST_APP)], { ELASTIC_EDGE_TOKEN: tokenA });
    await waitFor(async () => (await routeOf('sec2', 'a')).nodes === 1, 'a node for route a', 15_000);
    expect((await get(pa)).status).toBe(200);
    // The edge token still serves any route.
    start(['proxy', 'node', '--edge', edgeAddr, '--route', 'b', '--', ...appCommand(FAST_APP)], { ELASTIC_EDGE_TOKEN: TEST_TOKEN });
    await waitFor(async () => (await routeOf('sec2', 'b')).nodes === 1, 'a node for route b', 15_000);
    expect((await get(pb)).status).toBe(200);
    const counters = (await requestStatus<Snapshot>(join(env.ELASTIC_RUN_DIR, 'edge.sec2.sock'))).config.counters as { authFailures: number };
    expect(counters.authFailures).toBeGreaterThanOrEqual(1);
  });
});
