import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { isIdent } from '../model/validate.js';

/**
 * The edge <-> node wire protocol (version 2). Control frames and, during a client session,
 * DATA/END frames; a pull connection carries one client at a time and is reused (link.ts).
 *
 * Frame: version (u8) | type (u8) | payload length (u16 BE) | payload (<= MAX_PAYLOAD bytes; DATA
 * up to 65535).
 *
 *   node connects to the edge's node port
 *   edge -> CHALLENGE  edgeNonce(32)
 *   node -> AUTH       mac(32) | nodeNonce(32) | meta JSON      mac = HMAC(token, "node", edgeNonce, nodeNonce, meta)
 *   edge -> WELCOME    mac(32)                                  mac = HMAC(token, "edge", nodeNonce, edgeNonce)
 *      or  REFUSED     reason text, then close
 *   ... the connection waits, idle, in the edge's pool ...
 *   edge -> CLIENT     client JSON, then DATA frames of the client's bytes   (or STOP: the node should exit)
 *   node -> READY      once it is connected to the app; DATA frames of the app's bytes follow
 *   both -> END        after the last DATA of that direction (a FIN); when both sides sent END
 *                      and closed their socket, the connection is idle again for the next CLIENT.
 *                      An abort (reset, error) closes the pull connection instead.
 *
 * A pull connection that dies before READY has forwarded nothing to the app, so the edge can
 * hand its client to another node (it keeps the client's bytes until READY).
 *
 * Version 1 had no DATA/END: after READY the connection was a raw byte pipe, closed with the
 * client, so every client cost the node a new TCP connection and a challenge round trip.
 */
export const WIRE_VERSION = 2;
export const MAX_PAYLOAD = 4096;
export const NONCE_BYTES = 32;
const MAC_BYTES = 32;

export const FrameType = {
  challenge: 1,
  auth: 2,
  welcome: 3,
  refused: 4,
  client: 5,
  ready: 6,
  stop: 7,
  data: 8,
  end: 9,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

export interface Frame {
  readonly type: number;
  readonly payload: Buffer;
}

/** What a node says about itself in AUTH. Validated by the edge (untrusted until then). */
export interface NodeMeta {
  node: string; // random id, one per node process
  route: string;
  concurrency: number;
  pid: number;
  instance?: string; // ELASTIC_INSTANCE when the edge started this node
  app?: string; // "address:port" of the app, for drain by endpoint
  /** The node stops itself after its own idle timeout: it only counts clients it carries, so it stays on the pull path. */
  selfIdle?: boolean;
}

/** What the edge tells a node about a client it hands over. */
export interface ClientInfo {
  id: number;
  remote: string;
  route: string;
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    message: string,
    readonly reason: 'garbled' | 'version' | 'too-large' | 'timeout' | 'closed' | 'auth' | 'unexpected',
  ) {
    super(message);
  }
}

export function encodeFrame(type: number, payload: Buffer = EMPTY): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new ProtocolError(`frame payload ${payload.length} > ${MAX_PAYLOAD}`, 'too-large');
  const out = Buffer.allocUnsafe(4 + payload.length);
  out[0] = WIRE_VERSION;
  out[1] = type;
  out.writeUInt16BE(payload.length, 2);
  payload.copy(out, 4);
  return out;
}

export const EMPTY = Buffer.alloc(0);

/**
 * Reads frames from a socket, one at a time and only when asked, so bytes that follow the last
 * frame (the raw stream) are never taken for frames. `detach()` hands those bytes back.
 */
export class FrameReader {
  private buf: Buffer = EMPTY;
  private failure: ProtocolError | null = null;
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout } | null = null;
  private readonly onData = (chunk: Buffer) => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.buf.length > MAX_PAYLOAD + 4 && !this.waiter) this.sock.pause(); // nobody reading: stop buffering
    this.pump();
  };
  private readonly onEnd = () => this.fail(new ProtocolError('connection closed', 'closed'));
  private readonly onError = (err: Error) => this.fail(new ProtocolError(`connection error: ${err.message}`, 'closed'));

  constructor(private readonly sock: Socket) {
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    sock.on('close', this.onEnd);
    sock.on('error', this.onError);
  }

  /** The next frame; rejects on timeout, close, or a malformed frame. */
  next(timeoutMs?: number): Promise<Frame> {
    if (this.waiter) return Promise.reject(new Error('FrameReader: one read at a time'));
    return new Promise<Frame>((resolve, reject) => {
      this.waiter = { resolve, reject };
      if (timeoutMs !== undefined) {
        this.waiter.timer = setTimeout(() => this.fail(new ProtocolError(`no frame within ${timeoutMs} ms`, 'timeout')), timeoutMs);
      }
      this.sock.resume();
      this.pump();
    });
  }

  /** Stop reading frames: the socket is paused and the unread bytes are returned. */
  detach(): Buffer {
    this.sock.pause();
    this.sock.off('data', this.onData);
    this.sock.off('end', this.onEnd);
    this.sock.off('close', this.onEnd);
    this.sock.off('error', this.onError);
    if (this.waiter?.timer) clearTimeout(this.waiter.timer);
    this.waiter = null;
    const rest = this.buf;
    this.buf = EMPTY;
    return rest;
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    const b = this.buf;
    if (b.length < 4) {
      if (this.failure) this.settle(null, this.failure);
      return;
    }
    if (b[0] !== WIRE_VERSION) return this.fail(new ProtocolError(`unsupported protocol version ${b[0]}`, b[0] === 0x47 || b[0] === 0x50 ? 'garbled' : 'version'));
    const len = b.readUInt16BE(2);
    if (len > MAX_PAYLOAD) return this.fail(new ProtocolError(`frame of ${len} bytes`, 'too-large'));
    if (b.length < 4 + len) {
      if (this.failure) this.settle(null, this.failure);
      return;
    }
    const frame = { type: b[1]!, payload: b.subarray(4, 4 + len) };
    this.buf = b.length === 4 + len ? EMPTY : b.subarray(4 + len);
    this.settle(frame, null);
  }

  private fail(err: ProtocolError): void {
    if (!this.failure) this.failure = err;
    if (err.reason === 'closed') this.pump(); // a complete frame may still be buffered
    else if (this.waiter) this.settle(null, err);
  }

  private settle(frame: Frame | null, err: Error | null): void {
    const w = this.waiter!;
    this.waiter = null;
    if (w.timer) clearTimeout(w.timer);
    if (err) w.reject(err);
    else w.resolve(frame!);
  }
}

// --- authentication -----------------------------------------------------------------------

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

function mac(token: Buffer, label: string, ...parts: Buffer[]): Buffer {
  const h = createHmac('sha256', token);
  h.update(`elastic-edge/${WIRE_VERSION} ${label}\0`);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function authPayload(token: Buffer, edgeNonce: Buffer, meta: NodeMeta): { payload: Buffer; nodeNonce: Buffer } {
  const nodeNonce = newNonce();
  const json = Buffer.from(JSON.stringify(meta));
  return { payload: Buffer.concat([mac(token, 'node', edgeNonce, nodeNonce, json), nodeNonce, json]), nodeNonce };
}

/** Check an AUTH payload; the meta is returned only when the MAC is right. */
export function verifyAuth(token: Buffer, edgeNonce: Buffer, payload: Buffer): { meta: unknown; nodeNonce: Buffer } | null {
  if (payload.length < MAC_BYTES + NONCE_BYTES + 2) return null;
  const given = payload.subarray(0, MAC_BYTES);
  const nodeNonce = payload.subarray(MAC_BYTES, MAC_BYTES + NONCE_BYTES);
  const json = payload.subarray(MAC_BYTES + NONCE_BYTES);
  if (!timingSafeEqual(given, mac(token, 'node', edgeNonce, nodeNonce, json))) return null;
  try {
    return { meta: JSON.parse(json.toString('utf8')), nodeNonce };
  } catch {
    return null;
  }
}

/** The route an AUTH payload names, before its MAC is checked (only to pick the key to check it with). */
export function claimedRoute(payload: Buffer): string | null {
  try {
    const meta = JSON.parse(payload.subarray(MAC_BYTES + NONCE_BYTES).toString('utf8')) as { route?: unknown };
    return typeof meta.route === 'string' && isIdent(meta.route) ? meta.route : null;
  } catch {
    return null;
  }
}

export function welcomePayload(token: Buffer, nodeNonce: Buffer, edgeNonce: Buffer): Buffer {
  return mac(token, 'edge', nodeNonce, edgeNonce);
}

export function verifyWelcome(token: Buffer, nodeNonce: Buffer, edgeNonce: Buffer, payload: Buffer): boolean {
  return payload.length === MAC_BYTES && timingSafeEqual(payload, mac(token, 'edge', nodeNonce, edgeNonce));
}

export function encodeJson(type: number, value: unknown): Buffer {
  return encodeFrame(type, Buffer.from(JSON.stringify(value)));
}

export function decodeJson(frame: Frame): unknown {
  try {
    return JSON.parse(frame.payload.toString('utf8'));
  } catch {
    throw new ProtocolError('frame payload is not JSON', 'garbled');
  }
}
