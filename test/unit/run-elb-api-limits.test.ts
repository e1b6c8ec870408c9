import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIONS, ElbService } from '../../src/engine/run/elb/actions.js';
import { startElbServer, type RunningElbServer } from '../../src/engine/run/elb/server.js';
import { createLogger } from '../../src/engine/runtime/logger.js';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';

/**
 * The API's server limits and metric labels (issue 12 findings 8 and 9, issue 13 item 6), over
 * real sockets: what a slow, lying, huge or vanishing client gets, and that no caller can create
 * new metric series.
 */
let dir: string;
let server: RunningElbServer;
const counted: Array<[string, string]> = [];
const logged: string[] = [];
const LIMITS = { bodyTimeoutMs: 400, headersTimeoutMs: 400, maxConnections: 4 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'run-elb-limits-'));
  const host = { reservedPorts: () => new Set<number>(), portsTaken: async () => [], unknownInstances: async () => [], forbiddenTargets: () => [], health: async () => [], dnsName: () => '127.0.0.1', onChange: () => {} };
  server = await startElbServer({
    address: '127.0.0.1',
    port: 0,
    region: 'us-east-1',
    keys: [{ accessKeyId: 'AKIDLIMITS00000001', secret: 'limits-secret-0123456789abcdefghij' }],
    service: new ElbService(new FileStateStore(dir), host),
    logger: createLogger({ json: true, write: (l) => logged.push(l) }),
    onRequest: (action, code) => counted.push([action, code]),
    limits: LIMITS,
  });
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Write raw bytes, collect what comes back until the server closes (or `ms` pass). */
function raw(write: (s: Socket) => void, ms = 5000): Promise<{ text: string; error: string | null; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = connect(server.port, '127.0.0.1');
    let text = '';
    let error: string | null = null;
    const timer = setTimeout(() => s.destroy(), ms);
    s.on('connect', () => write(s));
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => (clearTimeout(timer), resolve({ text, error, closedAfterMs: Date.now() - t0 })));
  });
}
const head = (len: number) => `POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${len}\r\n\r\n`;
const settle = () => new Promise((r) => setTimeout(r, 100));

describe('ELB API metric labels', () => {
  it('50 unsigned requests with made-up actions add no series: every label is one of ours or "unknown"', async () => {
    const before = counted.length;
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`http://127.0.0.1:${server.port}/`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `Action=Evil${i}${Math.random().toString(36).slice(2)}&Version=2012-06-01` });
      expect(res.status).toBe(403);
    }
    const mine = counted.slice(before);
    expect(mine).toHaveLength(50);
    expect(new Set(mine.map(([a, c]) => `${a} ${c}`))).toEqual(new Set(['unknown MissingAuthenticationToken']));
    expect(counted.every(([a]) => a === 'unknown' || (ACTIONS as readonly string[]).includes(a))).toBe(true);
  });
});

describe('ELB API server limits', () => {
  it('a 20 MB body gets a clean 413 the client reads (not a connection reset)', async () => {
    const body = Buffer.alloc(20 * 1024 * 1024, 0x61);
    const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(r.status).toBe(413);
    expect(r.text).toContain('request body too large');
  });

  it('a chunked body that grows past the limit gets a 413 too', async () => {
    const r = await raw((s) => {
      s.write('POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n');
      for (let i = 0; i < 40; i++) s.write(`10000\r\n${'a'.repeat(0x10000)}\r\n`);
      s.write('0\r\n\r\n');
    });
    expect(r.text).toMatch(/^HTTP\/1\.1 413 /);
    expect(r.error).toBeNull();
  });

  it('a Content-Length over the limit with a short body is answered 413 at once', async () => {
    const r = await raw((s) => s.write(`${head(1_000_000)}Action=x`));
    expect(r.text).toMatch(/^HTTP\/1\.1 413 /);
    expect(r.closedAfterMs).toBeLessThan(LIMITS.bodyTimeoutMs + 300);
  });

  it('a body shorter than its Content-Length gets 408 RequestTimeout after the body timeout (not 500)', async () => {
    const r = await raw((s) => s.write(`${head(1000)}Action=x`));
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.text).toContain('<Code>RequestTimeout</Code>');
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(LIMITS.bodyTimeoutMs - 50);
    expect(r.closedAfterMs).toBeLessThan(LIMITS.bodyTimeoutMs + 1500);
  });

  it('headers that never finish: the connection is closed after the header timeout', async () => {
    const r = await raw((s) => s.write('POST / HTTP/1.1\r\nhost: x\r\n'));
    expect(r.closedAfterMs).toBeLessThan(LIMITS.headersTimeoutMs + 2500);
  });

  it('a client that goes away mid-body is counted once as Aborted and not logged', async () => {
    const [c0, l0] = [counted.length, logged.length];
    await raw((s) => {
      s.write(`${head(1000)}Action=x`);
      setTimeout(() => s.destroy(), 50);
    });
    await new Promise((r) => setTimeout(r, LIMITS.bodyTimeoutMs + 200)); // past the body timeout too
    expect(counted.slice(c0)).toEqual([['unknown', 'Aborted']]);
    expect(logged.slice(l0)).toEqual([]);
  });

  it('at most maxConnections connections: more are closed on accept; one freed, a request works again', async () => {
    const held: Socket[] = [];
    for (let i = 0; i < LIMITS.maxConnections; i++) {
      const s = connect(server.port, '127.0.0.1');
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      s.write('POST / HTTP/1.1\r\nhost: x\r\n'); // slow headers: each holds a connection
      held.push(s);
    }
    await settle();
    const extra = await raw((s) => s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'), 2000);
    expect(extra.text).toBe('');
    for (const s of held) s.destroy();
    await settle();
    const res = await fetch(`http://127.0.0.1:${server.port}/?Action=DescribeLoadBalancers&Version=2012-06-01`);
    expect(res.status).toBe(403);
  });
});
