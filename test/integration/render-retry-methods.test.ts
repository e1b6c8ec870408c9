import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStop } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { LineReader } from '../support/lines.js';

// HAProxy's L7 retries (retry-on empty-response response-timeout: no request lost to a backend
// that vanished) must never send a request twice that a backend may have run and that is not
// idempotent: POST, PATCH and LOCK (nginx's list, proxy_next_upstream without non_idempotent) are
// retried only when they never reached a server (conn-failure). The backend closes the first request of each method without an answer.
// Ports (26600-26799 is render's range; this file 27610-27611): backend 27610, haproxy 27611.
const BACKEND = 27610;
const FRONT = 27611;

let dir: string;
let backend: Server;
const seen = new Map<string, number>();
let child: ReturnType<typeof elastic> | null = null;
const env = () => ({ ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'el-rm-'));
  backend = createServer((sock: Socket) => {
    let head = '';
    sock.on('error', () => {});
    sock.on('data', (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const method = head.slice(0, head.indexOf(' '));
      head = '';
      const n = (seen.get(method) ?? 0) + 1;
      seen.set(method, n);
      if (n === 1) return void sock.destroy(); // ran it, then died before answering
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n');
    });
  });
  await new Promise<void>((resolve, reject) => backend.once('error', reject).listen(BACKEND, '127.0.0.1', () => resolve()));
  const file = join(dir, 'retry.yaml');
  await writeFile(file, ['services:', `  - name: site\n    bind: 127.0.0.1:${FRONT}\n    mode: http\n    select: { backend: ["127.0.0.1:${BACKEND}"] }`].join('\n'));
  child = elastic(['render', '--proxy', 'haproxy', '--config', file, '--instance-name', 'retry-m', '--start', '--watch', '--wait', '50ms:1s'], { env: env(), timeout: 300_000 });
  await new LineReader(child.stdout!).next((l) => /started/.test(l), 'haproxy started', 20_000);
}, 60_000);

afterAll(async () => {
  child?.kill('SIGTERM');
  await child?.catch(() => {});
  await renderStop({ instance: 'retry-m', proxy: 'haproxy', env: env(), timeoutMs: 5000 }).catch(() => {});
  await new Promise((r) => backend?.close(r));
  await rm(dir, { recursive: true, force: true });
});

const curl = async (method: string) => {
  const r = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '-X', method, ...(method === 'POST' || method === 'PUT' ? ['-d', 'x=1'] : []), `http://127.0.0.1:${FRONT}/`], { reject: false });
  return Number(r.stdout);
};

describe('render HAProxy: which requests an L7 retry may send twice', () => {
  it.each([
    { method: 'GET', status: 200, sent: 2 },
    { method: 'OPTIONS', status: 200, sent: 2 },
    { method: 'POST', status: 502, sent: 1 },
    { method: 'PUT', status: 200, sent: 2 },
    { method: 'DELETE', status: 200, sent: 2 },
    { method: 'PATCH', status: 502, sent: 1 },
  ])('$method whose backend closed without answering: $status, the backend saw it $sent time(s)', async ({ method, status, sent }) => {
    expect(await curl(method)).toBe(status);
    expect(seen.get(method)).toBe(sent);
  });
});
