import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { rawConnect } from './proxy.js';

/**
 * A minimal WebSocket client for the proxy tests (Node 20 has none built in): the HTTP Upgrade,
 * then small masked text frames out and unmasked text frames in (payloads < 126 bytes).
 */
export interface WsClient {
  readonly sock: Socket;
  /** Send a text message and wait for the next message from the server. */
  echo(text: string, timeoutMs?: number): Promise<string>;
  close(): void;
}

export async function openWs(port: number, host: string): Promise<WsClient> {
  const sock = await rawConnect(port);
  sock.setNoDelay(true);
  sock.setMaxListeners(0);
  let buf: Buffer = Buffer.alloc(0);
  let waiter: ((b: Buffer) => void) | null = null;
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    waiter?.(buf);
  });
  const until = (test: (b: Buffer) => number, timeoutMs: number) =>
    new Promise<Buffer>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('websocket: no answer in time')), timeoutMs);
      const check = (b: Buffer) => {
        const n = test(b);
        if (n < 0) return;
        clearTimeout(t);
        waiter = null;
        const out = b.subarray(0, n);
        buf = b.subarray(n);
        resolve(out);
      };
      waiter = check;
      sock.once('close', () => reject(new Error('websocket: closed')));
      check(buf);
    });
  sock.write(`GET /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const head = (await until((b) => (b.indexOf('\r\n\r\n') < 0 ? -1 : b.indexOf('\r\n\r\n') + 4), 30_000)).toString();
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`websocket: no upgrade: ${head.split('\r\n')[0]}`);
  return {
    sock,
    async echo(text, timeoutMs = 5000) {
      const payload = Buffer.from(text);
      const mask = randomBytes(4);
      sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]));
      const frame = await until((b) => (b.length >= 2 && b.length >= 2 + (b[1]! & 0x7f) ? 2 + (b[1]! & 0x7f) : -1), timeoutMs);
      return frame.subarray(2).toString();
    },
    close() {
      sock.destroy();
    },
  };
}
