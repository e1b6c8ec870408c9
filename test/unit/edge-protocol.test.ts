import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import {
  authPayload,
  encodeFrame,
  FrameReader,
  FrameType,
  MAX_PAYLOAD,
  newNonce,
  ProtocolError,
  verifyAuth,
  verifyWelcome,
  welcomePayload,
  WIRE_VERSION,
} from '../../src/engine/edge/protocol.js';
import { validateMeta } from '../../src/engine/edge/meta.js';

/** A connected loopback socket pair: frames are tested over real sockets. */
let server: Server;
let port = 0;
const pending: Array<(s: Socket) => void> = [];
beforeAll(async () => {
  server = createServer((s) => pending.shift()!(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function pair(): Promise<[Socket, Socket]> {
  const accepted = new Promise<Socket>((r) => pending.push(r));
  const c = connect(port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  return [c, await accepted];
}

const token = Buffer.from('0123456789abcdef0123456789abcdef');
const meta = { node: 'n1', route: 'web', concurrency: 2, pid: 42 };

describe('frames', () => {
  it('encodes version, type, length', () => {
    expect([...encodeFrame(FrameType.ready)]).toEqual([WIRE_VERSION, FrameType.ready, 0, 0]);
    expect([...encodeFrame(FrameType.stop, Buffer.from('ab'))]).toEqual([WIRE_VERSION, FrameType.stop, 0, 2, 0x61, 0x62]);
    expect(() => encodeFrame(1, Buffer.alloc(MAX_PAYLOAD + 1))).toThrow(ProtocolError);
  });

  it('reads frames split into single bytes, and hands back the raw bytes that follow', async () => {
    const [a, b] = await pair();
    const reader = new FrameReader(b);
    const bytes = Buffer.concat([encodeFrame(FrameType.challenge, Buffer.from('hello')), encodeFrame(FrameType.ready), Buffer.from('RAW STREAM')]);
    for (const byte of bytes) a.write(Buffer.from([byte]));
    const f1 = await reader.next(2000);
    expect(f1.type).toBe(FrameType.challenge);
    expect(f1.payload.toString()).toBe('hello');
    expect((await reader.next(2000)).type).toBe(FrameType.ready);
    await new Promise((r) => setTimeout(r, 50));
    const rest = reader.detach();
    expect(rest.toString()).toBe('RAW STREAM');
    a.destroy();
    b.destroy();
  });

  it.each([
    ['an HTTP request instead of a frame', Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'garbled'],
    ['another protocol version', Buffer.from([9, 1, 0, 0]), 'version'],
    ['a frame longer than the limit', Buffer.from([WIRE_VERSION, 1, 0xff, 0xff]), 'too-large'],
  ])('rejects %s', async (_what, bytes, reason) => {
    const [a, b] = await pair();
    const reader = new FrameReader(b);
    a.write(bytes);
    await expect(reader.next(2000)).rejects.toMatchObject({ reason });
    a.destroy();
    b.destroy();
  });

  it('times out a silent peer and reports a closed one', async () => {
    const [a, b] = await pair();
    const reader = new FrameReader(b);
    await expect(reader.next(100)).rejects.toMatchObject({ reason: 'timeout' });
    const [c, d] = await pair();
    const r2 = new FrameReader(d);
    c.end(encodeFrame(FrameType.stop)); // a complete frame just before the close is still read
    expect((await r2.next(2000)).type).toBe(FrameType.stop);
    await expect(r2.next(2000)).rejects.toMatchObject({ reason: 'closed' });
    for (const s of [a, b, c, d]) s.destroy();
  });
});

describe('HMAC challenge-response', () => {
  it('accepts the right token and returns the meta', () => {
    const edgeNonce = newNonce();
    const { payload, nodeNonce } = authPayload(token, edgeNonce, meta);
    const ok = verifyAuth(token, edgeNonce, payload);
    expect(ok?.meta).toEqual(meta);
    expect(ok?.nodeNonce.equals(nodeNonce)).toBe(true);
    expect(verifyWelcome(token, nodeNonce, edgeNonce, welcomePayload(token, nodeNonce, edgeNonce))).toBe(true);
  });

  it('refuses a wrong token, a replay to another challenge, tampered meta, short payloads', () => {
    const edgeNonce = newNonce();
    const { payload, nodeNonce } = authPayload(token, edgeNonce, meta);
    expect(verifyAuth(Buffer.from('another-token-of-enough-length'), edgeNonce, payload)).toBeNull();
    expect(verifyAuth(token, newNonce(), payload)).toBeNull(); // replayed against a new challenge
    const tampered = Buffer.from(payload);
    tampered[tampered.length - 2] = tampered[tampered.length - 2]! ^ 1;
    expect(verifyAuth(token, edgeNonce, tampered)).toBeNull();
    expect(verifyAuth(token, edgeNonce, payload.subarray(0, 40))).toBeNull();
    // A fake edge that does not know the token cannot answer the node's nonce.
    expect(verifyWelcome(token, nodeNonce, edgeNonce, welcomePayload(Buffer.from('wrong-token-wrong-token'), nodeNonce, edgeNonce))).toBe(false);
    expect(verifyWelcome(token, nodeNonce, edgeNonce, Buffer.alloc(3))).toBe(false);
  });

  it.each([
    [{ ...meta }, true],
    [{ ...meta, node: 'bad id\n' }, false],
    [{ ...meta, route: '../etc' }, false],
    [{ ...meta, concurrency: 0 }, false],
    [{ ...meta, concurrency: 1.5 }, false],
    [{ ...meta, concurrency: 100_000 }, false],
    [{ ...meta, pid: -1 }, false],
    [{ ...meta, app: '127.0.0.1:8080' }, true],
    [{ ...meta, app: '$(reboot)' }, false],
    [null, false],
    ['text', false],
  ])('validates node meta %j -> %s', (m, ok) => {
    expect(typeof validateMeta(m) !== 'string').toBe(ok);
  });
});
