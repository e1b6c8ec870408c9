import type { Socket } from 'node:net';
import { EMPTY, encodeFrame, FrameType, MAX_PAYLOAD, ProtocolError, WIRE_VERSION, type Frame } from './protocol.js';

/**
 * An authenticated pull connection after the handshake (wire version 2): it carries one client
 * at a time and is reused for the next one, so a client costs no TCP connect, no accept and no
 * challenge round trip between node and edge. The stream is framed: control frames (CLIENT,
 * READY, STOP) and, during a session, DATA (raw bytes, up to 65535 per frame) and END (the
 * sender's direction is done: a FIN). Frames are parsed only while somebody consumes them, so a
 * frame meant for the next session is never taken by the current one.
 */
export const MAX_DATA = 0xffff;

/** Below this a payload is copied behind its header (cheaper than a writev of two buffers). */
const COPY_MAX = 16 * 1024;

/** A DATA header for `len` bytes at the start of `out` (control frames: encodeFrame, max 4 KiB). */
function putDataHeader(out: Buffer, len: number): Buffer {
  out[0] = WIRE_VERSION;
  out[1] = FrameType.data;
  out.writeUInt16BE(len, 2);
  return out;
}

/** A whole DATA frame (up to MAX_DATA) in one buffer. */
export function dataFrame(chunk: Buffer): Buffer {
  const out = putDataHeader(Buffer.allocUnsafe(4 + chunk.length), chunk.length);
  chunk.copy(out, 4);
  return out;
}

export interface LinkHandlers {
  onFrame(frame: Frame): void;
  onData(chunk: Buffer): void;
}

export class Link {
  private buf: Buffer;
  /** Payload bytes of the current DATA frame still to come. */
  private dataLeft = 0;
  private handlers: LinkHandlers | null = null;
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | null = null;
  private failure: ProtocolError | null = null;
  /** Parsed until here: a consumer is attached, or one frame for `next()`. */
  private readonly onChunk = (chunk: Buffer) => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.pump();
    if (this.buf.length > MAX_DATA + 4 && !this.handlers && !this.waiter) this.sock.pause(); // nobody reading
  };
  private readonly onGone = () => {
    if (!this.failure) this.failure = new ProtocolError('connection closed', 'closed');
    this.pump();
    if (this.waiter) this.settle(null);
  };

  constructor(
    readonly sock: Socket,
    leftover: Buffer = EMPTY,
  ) {
    this.buf = leftover;
    sock.on('data', this.onChunk);
    sock.on('close', this.onGone);
    // No half-close on a pull connection (END frames carry the FINs): a FIN means it is gone.
    sock.on('end', () => sock.destroy());
  }

  get closed(): boolean {
    return this.failure !== null || this.sock.destroyed;
  }

  /** The next control frame (while no session is attached). */
  next(): Promise<Frame> {
    if (this.waiter || this.handlers) return Promise.reject(new Error('Link: one reader at a time'));
    return new Promise<Frame>((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.sock.resume();
      this.pump();
      if (this.waiter && this.failure) this.settle(null);
    });
  }

  /** Deliver every frame to these handlers until `release()`. */
  attach(h: LinkHandlers): void {
    this.handlers = h;
    this.sock.resume();
    this.pump();
  }

  /** Stop delivering: the bytes after the current frame stay for the next consumer. */
  release(): void {
    this.handlers = null;
  }

  sendFrame(type: number, payload?: Buffer): boolean {
    return this.sock.write(encodeFrame(type, payload));
  }

  /** One DATA frame per chunk (split above 64 KiB): one write either way. */
  sendData(chunk: Buffer): boolean {
    if (chunk.length <= COPY_MAX) return this.sock.write(dataFrame(chunk));
    let ok = true;
    this.sock.cork(); // header and payload leave in one writev, the payload is not copied
    for (let off = 0; off < chunk.length; off += MAX_DATA) {
      const part = chunk.subarray(off, off + MAX_DATA);
      this.sock.write(putDataHeader(Buffer.allocUnsafe(4), part.length));
      ok = this.sock.write(part);
    }
    this.sock.uncork();
    return ok;
  }

  private pump(): void {
    while (this.buf.length && (this.handlers || this.waiter)) {
      const b = this.buf;
      if (this.dataLeft > 0) {
        if (!this.handlers) return this.fail(new ProtocolError('data outside a session', 'unexpected'));
        const n = Math.min(this.dataLeft, b.length);
        this.dataLeft -= n;
        this.buf = n === b.length ? EMPTY : b.subarray(n);
        this.handlers.onData(n === b.length ? b : b.subarray(0, n));
        continue;
      }
      if (b.length < 4) return;
      if (b[0] !== WIRE_VERSION) return this.fail(new ProtocolError(`unsupported protocol version ${b[0]}`, 'version'));
      const len = b.readUInt16BE(2);
      if (b[1] === FrameType.data) {
        if (!this.handlers) return this.fail(new ProtocolError('data outside a session', 'unexpected'));
        this.dataLeft = len;
        this.buf = b.length === 4 ? EMPTY : b.subarray(4);
        continue;
      }
      if (len > MAX_PAYLOAD) return this.fail(new ProtocolError(`frame of ${len} bytes`, 'too-large'));
      if (b.length < 4 + len) return;
      const frame = { type: b[1]!, payload: b.subarray(4, 4 + len) };
      this.buf = b.length === 4 + len ? EMPTY : b.subarray(4 + len);
      if (this.waiter) this.settle(frame);
      else this.handlers!.onFrame(frame);
    }
  }

  private fail(err: ProtocolError): void {
    this.failure = err;
    this.buf = EMPTY;
    this.sock.destroy();
    if (this.waiter) this.settle(null);
  }

  private settle(frame: Frame | null): void {
    const w = this.waiter!;
    this.waiter = null;
    if (frame) w.resolve(frame);
    else w.reject(this.failure ?? new ProtocolError('connection closed', 'closed'));
  }
}

/**
 * One client session over a link: `local` (the client at the edge, the app at the node) and
 * the link are joined both ways. Backpressure pauses the reader; a FIN becomes END and END
 * becomes a FIN (half-close works). The session is over, and the link reusable, once both sides
 * sent END and `local` is closed; anything else (an abort, a reset, a broken frame) destroys
 * the link, so a late byte of this session can never reach the next one.
 */
export function relay(link: Link, local: Socket, done: (reusable: boolean) => void): void {
  const pull = link.sock;
  let sentEnd = false;
  let gotEnd = false;
  // What `local` delivers in one turn of the event loop leaves in one write: typically the app's
  // response and its FIN (DATA + END), one syscall and one wakeup of the peer instead of two.
  let corked = false;
  const flush = () => {
    if (!corked) return;
    corked = false;
    pull.uncork();
  };
  let finished = false;
  const finish = (reusable: boolean) => {
    if (finished) return;
    finished = true;
    flush();
    for (const [emitter, event, handler] of listeners) emitter.off(event, handler);
    link.release();
    if (!reusable) {
      pull.destroy();
      local.destroy();
    }
    done(reusable);
  };
  const onLocalData = (chunk: Buffer) => {
    if (!corked) {
      corked = true;
      pull.cork();
      setImmediate(flush);
    }
    if (!link.sendData(chunk)) local.pause();
  };
  const onPullDrain = () => local.resume();
  const onLocalDrain = () => pull.resume();
  const onLocalEnd = () => {
    sentEnd = true;
    link.sendFrame(FrameType.end);
  };
  const onLocalClose = () => {
    // A clean close comes after both FINs; anything earlier is an abort: the link goes too.
    finish(sentEnd && gotEnd && !pull.destroyed);
  };
  const onPullClose = () => finish(false);
  // One list, so what finish() removes is exactly what was added.
  const listeners: Array<[Socket, string, Parameters<Socket['off']>[1]]> = [
    [local, 'data', onLocalData],
    [local, 'end', onLocalEnd],
    [local, 'close', onLocalClose],
    [local, 'drain', onLocalDrain],
    [pull, 'drain', onPullDrain],
    [pull, 'close', onPullClose],
  ];
  for (const [emitter, event, handler] of listeners) emitter.on(event, handler);
  link.attach({
    onData: (chunk) => {
      if (!local.write(chunk)) pull.pause();
    },
    onFrame: (frame) => {
      if (frame.type !== FrameType.end) return finish(false);
      gotEnd = true;
      // The peer's last frame of this session: what follows (the next CLIENT) is not ours.
      link.release();
      pull.resume();
      local.end();
    },
  });
  if (local.destroyed) return finish(false);
  if (local.readableEnded) onLocalEnd(); // a FIN that came before the session started
  local.resume();
}
