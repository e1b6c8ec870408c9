import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { encodeFrame, FrameType, ProtocolError, WIRE_VERSION } from '../../src/engine/edge/protocol.js';
import { Link, MAX_DATA, relay } from '../../src/engine/edge/link.js';

/** Wire version 2 sessions over real loopback sockets: framing, half-close, reuse, aborts. */
let server: Server;
let port = 0;
const pending: Array<(s: Socket) => void> = [];
const opened: Socket[] = [];
beforeAll(async () => {
  server = createServer({ allowHalfOpen: true }, (s) => pending.shift()!(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of opened) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

async function pair(): Promise<[Socket, Socket]> {
  const accepted = new Promise<Socket>((r) => pending.push(r));
  const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => c.once('connect', r));
  const s = await accepted;
  c.on('error', () => {});
  s.on('error', () => {});
  opened.push(c, s);
  return [c, s];
}

function readAll(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.once('end', () => resolve(out));
    s.once('close', () => resolve(out));
  });
}

/** Both ends of one session: edge side (link a, client) and node side (link b, app). */
async function session(a: Link, b: Link) {
  const [client, edgeClient] = await pair();
  const [nodeApp, app] = await pair();
  const edgeDone = new Promise<boolean>((r) => relay(a, edgeClient, r));
  const nodeDone = new Promise<boolean>((r) => relay(b, nodeApp, r));
  return { client, app, edgeDone, nodeDone };
}

describe('Link', () => {
  it('parses DATA split into single bytes and stops at the frame meant for the next consumer', async () => {
    const [x, y] = await pair();
    const link = new Link(y);
    const bytes = Buffer.concat([encodeFrame(FrameType.data, Buffer.from('hello ')), encodeFrame(FrameType.data, Buffer.from('world')), encodeFrame(FrameType.end), encodeFrame(FrameType.stop)]);
    for (const byte of bytes) x.write(Buffer.from([byte]));
    let data = '';
    const ended = new Promise<void>((resolve) =>
      link.attach({
        onData: (c) => (data += c.toString()),
        onFrame: (f) => {
          expect(f.type).toBe(FrameType.end);
          link.release();
          resolve();
        },
      }),
    );
    await ended;
    expect(data).toBe('hello world');
    expect((await link.next()).type).toBe(FrameType.stop);
    x.destroy();
    y.destroy();
  });

  it('splits a chunk above 64 KiB into DATA frames and reassembles it', async () => {
    const [x, y] = await pair();
    const a = new Link(x);
    const b = new Link(y);
    const big = Buffer.alloc(MAX_DATA * 2 + 10, 7);
    let got = 0;
    const done = new Promise<void>((resolve) => b.attach({ onData: (c) => (got += c.length) === big.length && resolve(), onFrame: () => {} }));
    a.sendData(big);
    await done;
    expect(got).toBe(big.length);
    x.destroy();
    y.destroy();
  });

  it('DATA outside a session or a wrong version destroys the connection', async () => {
    for (const bytes of [encodeFrame(FrameType.data, Buffer.from('x')), Buffer.from([WIRE_VERSION - 1, FrameType.client, 0, 0])]) {
      const [x, y] = await pair();
      const link = new Link(y);
      x.write(bytes);
      await expect(link.next()).rejects.toBeInstanceOf(ProtocolError);
      expect(y.destroyed).toBe(true);
      x.destroy();
    }
  });
});

describe('relay', () => {
  it('carries a half-closed request and its response, then the same link carries the next client', async () => {
    const [x, y] = await pair();
    const a = new Link(x);
    const b = new Link(y);
    for (let i = 0; i < 3; i++) {
      const s = await session(a, b);
      const request = readAll(s.app);
      s.client.end(`request ${i}`); // the client half-closes first
      expect(await request).toBe(`request ${i}`);
      const response = readAll(s.client);
      s.app.end(`response ${i}`);
      expect(await response).toBe(`response ${i}`);
      s.client.destroy();
      s.app.destroy();
      expect(await s.edgeDone).toBe(true);
      expect(await s.nodeDone).toBe(true);
      expect(x.destroyed || y.destroyed).toBe(false);
    }
    x.destroy();
    y.destroy();
  });

  it('the next CLIENT frame behind END is left for the next session', async () => {
    const [x, y] = await pair();
    const a = new Link(x);
    const b = new Link(y);
    const s = await session(a, b);
    s.app.end('bye');
    const response = readAll(s.client);
    expect(await response).toBe('bye');
    s.client.end(); // edge: END, session done; the next CLIENT follows at once
    expect(await s.edgeDone).toBe(true);
    a.sendFrame(FrameType.client, Buffer.from('{}'));
    expect(await s.nodeDone).toBe(true);
    expect((await b.next()).type).toBe(FrameType.client);
    x.destroy();
    y.destroy();
  });

  it('an abort (client reset) closes the pull connection on both sides: nothing leaks into a next session', async () => {
    const [x, y] = await pair();
    const a = new Link(x);
    const b = new Link(y);
    const s = await session(a, b);
    s.client.write('partial');
    await new Promise((r) => setTimeout(r, 20));
    s.client.resetAndDestroy();
    expect(await s.edgeDone).toBe(false);
    expect(await s.nodeDone).toBe(false);
    expect(x.destroyed && y.destroyed).toBe(true);
  });
});
