import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createServer, type Server } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { matchHost, normaliseHost, sniffHttp, sniffTls } from '../../src/engine/edge/sniff.js';
import { BoundedQueue, type QueueLink } from '../../src/engine/edge/queue.js';
import { WaitReservoir } from '../../src/engine/edge/stats.js';

const head = (s: string) => Buffer.from(s.replace(/\n/g, '\r\n'));

describe('HTTP request head (Host routing)', () => {
  it.each<[string, string, unknown]>([
    ['plain Host', 'GET / HTTP/1.1\nHost: example.com\n\n', { state: 'ok', host: 'example.com' }],
    ['header name and value are case-insensitive', 'GET / HTTP/1.1\nhOsT: API.Example.COM:8080\n\n', { state: 'ok', host: 'api.example.com' }],
    ['trailing dot', 'GET / HTTP/1.1\nHost: example.com.\n\n', { state: 'ok', host: 'example.com' }],
    ['IPv6 literal', 'GET / HTTP/1.1\nHost: [::1]:80\n\n', { state: 'ok', host: '[::1]' }],
    ['no Host (HTTP/1.0)', 'GET / HTTP/1.0\nAccept: */*\n\n', { state: 'ok', host: null }],
    ['incomplete head', 'GET / HTTP/1.1\nHost: exa', { state: 'incomplete' }],
    ['two Host headers (smuggling)', 'GET / HTTP/1.1\nHost: a.com\nHost: b.com\n\n', { state: 'bad', status: 400 }],
    ['Host with a path', 'GET / HTTP/1.1\nHost: a.com/x\n\n', { state: 'bad', status: 400 }],
    ['Host with control characters', 'GET / HTTP/1.1\nHost: a\u001b[2J.com\n\n', { state: 'bad', status: 400 }],
    ['not HTTP', 'SSH-2.0-OpenSSH\n\n', { state: 'bad', status: 400 }],
    ['header line without colon', 'GET / HTTP/1.1\nHost example.com\n\n', { state: 'bad', status: 400 }],
  ])('%s', (_name, text, expected) => {
    expect(sniffHttp(head(text), 16384)).toMatchObject(expected as object);
  });

  it('answers 431 when the head is over the limit, complete or not', () => {
    expect(sniffHttp(head(`GET / HTTP/1.1\nX: ${'a'.repeat(600)}\n`), 512)).toMatchObject({ state: 'bad', status: 431 });
    expect(sniffHttp(head(`GET / HTTP/1.1\nX: ${'a'.repeat(600)}\n\n`), 512)).toMatchObject({ state: 'bad', status: 431 });
  });

  it('routes exact names, then *.parent wildcards, then the default', () => {
    const routes = new Map([
      ['example.com', 'web'],
      ['*.example.com', 'wild'],
      ['api.example.com', 'api'],
    ]);
    expect(matchHost('example.com', routes)).toBe('web');
    expect(matchHost('api.example.com', routes)).toBe('api');
    expect(matchHost('x.y.example.com', routes)).toBe('wild');
    expect(matchHost('other.org', routes)).toBeUndefined();
    expect(matchHost('other.org', routes, 'fallback')).toBe('fallback');
    expect(matchHost(null, routes, 'fallback')).toBe('fallback');
  });

  it('property: whatever the bytes, the parser never throws and a host is always safe text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.string({ maxLength: 80 }), (bytes, host) => {
        const r1 = sniffHttp(Buffer.from(bytes), 256);
        const r2 = sniffHttp(head(`GET / HTTP/1.1\nHost: ${host}\n\n`), 4096);
        for (const r of [r1, r2]) if (r.state === 'ok' && r.host !== null) expect(r.host).toMatch(/^(\[[0-9a-f:.]+\]|[a-z0-9_][a-z0-9_.-]*)$/);
        const n = normaliseHost(host);
        if (n !== null) expect(n).toMatch(/^(\[[0-9a-f:.]+\]|[a-z0-9_][a-z0-9_.-]*)$/);
      }),
      { numRuns: 500 },
    );
  });
});

describe('TLS ClientHello (SNI routing)', () => {
  let server: Server;
  let port = 0;
  let captured: Promise<Buffer>;
  beforeAll(async () => {
    let resolve!: (b: Buffer) => void;
    captured = new Promise((r) => (resolve = r));
    server = createServer((s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy())));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
    const c = tlsConnect({ host: '127.0.0.1', port, servername: 'Secure.Example.com' });
    c.on('error', () => {});
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('reads the server name from a real ClientHello, whole or growing', async () => {
    const hello = await captured;
    expect(sniffTls(hello, 16384)).toEqual({ state: 'ok', host: 'secure.example.com' });
    expect(sniffTls(hello.subarray(0, 30), 16384)).toEqual({ state: 'incomplete' });
    expect(sniffTls(Buffer.from('GET / HTTP/1.1\r\n'), 16384)).toMatchObject({ state: 'bad' });
  });

  it('property: arbitrary bytes never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const b = Buffer.from(bytes);
        if (b.length > 2) {
          b[0] = 0x16;
          b[1] = 0x03;
        }
        sniffTls(b, 16384);
      }),
      { numRuns: 500 },
    );
  });
});

describe('queue and wait percentiles', () => {
  type Item = QueueLink & { n: number };
  const item = (n: number): Item => ({ n, prev: null, next: null, queued: false });

  it('is a bounded FIFO with O(1) removal from the middle and re-queue at the front', () => {
    const q = new BoundedQueue<Item>(3);
    const [a, b, c, d] = [item(1), item(2), item(3), item(4)];
    expect([q.push(a), q.push(b), q.push(c), q.push(d)]).toEqual([true, true, true, false]);
    q.remove(b);
    expect([...q].map((i) => i.n)).toEqual([1, 3]);
    expect(q.shift()?.n).toBe(1);
    q.unshift(a);
    expect([...q].map((i) => i.n)).toEqual([1, 3]);
    q.remove(c);
    q.remove(c); // twice is harmless
    expect(q.size).toBe(1);
    expect(q.shift()).toBe(a);
    expect(q.shift()).toBeNull();
    expect(q.size).toBe(0);
  });

  it('reports nearest-rank p50/p99 over a fixed ring', () => {
    const w = new WaitReservoir(100);
    expect(w.percentile(50)).toBe(0);
    for (let i = 1; i <= 100; i++) w.add(i);
    expect(w.percentile(50)).toBe(50);
    expect(w.percentile(99)).toBe(99);
    for (let i = 0; i < 100; i++) w.add(1000); // old samples leave the ring
    expect(w.percentile(50)).toBe(1000);
    expect(w.count).toBe(100);
  });
});
