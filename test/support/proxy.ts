import { afterAll, afterEach, expect } from 'vitest';
import { request } from 'node:http';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningEdge, RunningNode } from '../../src/engine/proxy.js';

/** Shared pieces of the proxy tests: fixture apps and a plain HTTP client (a new connection per request). */
export const SLOW_APP = fileURLToPath(new URL('../fixtures/proxy/slow-app.mjs', import.meta.url));
export const FAST_APP = fileURLToPath(new URL('../fixtures/proxy/fast-app.mjs', import.meta.url));
export const TEST_TOKEN = 'proxy-test-token-0123456789abcdef';
export const WARM_APP = fileURLToPath(new URL('../fixtures/proxy/warm-app.mjs', import.meta.url));

/**
 * A test file's private run and state directories (set in the environment) and the edges and
 * nodes it starts, stopped after each test; the directory is removed after the file.
 */
export function proxyTestFiles(prefix: string): { dir: string; env: { ELASTIC_EDGE_TOKEN: string }; edges: RunningEdge[]; nodes: RunningNode[] } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.env.ELASTIC_RUN_DIR = join(dir, 'run');
  process.env.ELASTIC_STATE_DIR = join(dir, 'state');
  const edges: RunningEdge[] = [];
  const nodes: RunningNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.node.stop('test over')));
    await Promise.all(edges.splice(0).map((e) => e.close()));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, env: { ELASTIC_EDGE_TOKEN: TEST_TOKEN }, edges, nodes };
}

/** argv for an app with extra environment, without a shell: /usr/bin/env VAR=... node app. */
export function appCommand(app: string, env: Record<string, string | number> = {}): string[] {
  return ['/usr/bin/env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, app];
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function get(port: number, opts: { host?: string; timeoutMs?: number; path?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: opts.path ?? '/', agent: false, headers: opts.host ? { host: opts.host } : {}, timeout: opts.timeoutMs ?? 20_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Open a raw connection; resolves once connected. */
export function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the peer sends until it closes (or the timeout). */
export function readAll(s: Socket, timeoutMs = 10_000): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    let data = '';
    const t = setTimeout(() => resolve({ data, closed: false }), timeoutMs);
    s.setEncoding('utf8');
    s.on('data', (c: string) => (data += c));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve({ data, closed: true });
    });
  });
}


/** An edge's refusal: 503, the reason in the body, and Retry-After when given. */
export function expectRefused(reply: Reply, reason: RegExp, retryAfter?: string): void {
  expect(reply.status).toBe(503);
  expect(reply.body).toMatch(reason);
  if (retryAfter !== undefined) expect(reply.headers['retry-after']).toBe(retryAfter);
}

/** The private directory of the (one) running warm-path HAProxy under a run directory. */
export function warmHaproxyDir(runDir: string): string {
  return join(runDir, readdirSync(runDir).find((d) => d.startsWith('edge-haproxy-'))!);
}

/** `show stat` from that HAProxy's runtime API, as rows of fields (pxname, svname, qcur, qmax, scur, smax, slim, stot, ...). */
export function haproxyStats(at: string): Promise<string[][]> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = connect(join(at, 'haproxy.sock'), () => s.write('show stat\n'));
    s.on('data', (d) => (text += d));
    s.on('error', reject);
    s.on('close', () => resolve(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(','))));
  });
}
