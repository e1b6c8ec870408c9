import type { Socket } from 'node:net';

/** Terminate a connection now (RST when data is unread): for refusals, timeouts and aborts. */
export function drop(sock: Socket): void {
  if (!sock.destroyed) sock.destroy();
}
