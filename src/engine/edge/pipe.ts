import type { Socket } from 'node:net';

/**
 * The data path: two sockets joined both ways with nothing in between — each chunk read is
 * written as is, backpressure pauses the reader until the writer drains, a FIN is passed on (so
 * half-closed protocols work), and an abort on one side destroys the other. No per-chunk
 * allocation, logging or framing.
 */
export function splice(a: Socket, b: Socket, onDone?: () => void): void {
  if (a.destroyed || b.destroyed) {
    a.destroy();
    b.destroy();
    onDone?.();
    return;
  }
  oneWay(a, b);
  oneWay(b, a);
  let closed = 0;
  const onClose = (other: Socket) => () => {
    // The other side keeps flushing only if we already passed it a clean FIN.
    if (!other.writableEnded) other.destroy();
    if (++closed === 2 && onDone) onDone();
  };
  a.once('close', onClose(b));
  b.once('close', onClose(a));
  a.resume();
  b.resume();
}

function oneWay(src: Socket, dst: Socket): void {
  src.on('data', (chunk: Buffer) => {
    if (!dst.write(chunk)) src.pause();
  });
  dst.on('drain', () => src.resume());
  src.once('end', () => dst.end());
}

/** Terminate a connection now (RST when data is unread): for refusals and timeouts. */
export function drop(sock: Socket): void {
  if (!sock.destroyed) sock.destroy();
}
