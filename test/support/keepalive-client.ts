import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';

/**
 * A small keep-alive HTTP client for membership-change tests: `connections` sockets, each sending
 * GET requests back to back until `seconds` pass (bounded in time and by `maxRequests`), never
 * retrying. Every failure is recorded with its time, cause and the connection it happened on
 * (local port, requests it carried before, how long it sat idle before this request), so a test
 * can say which event (reload, removal) and which race it belongs to. Counterpart of wrk, whose
 * summary says only how many.
 */
export interface KeepAliveFailure {
  at: number;
  what: string;
  /** Local port of the connection (0: no connection was made). */
  port: number;
  /** Requests this connection carried before the failed one (0: a new connection). */
  before: number;
  /** ms between the connection's previous response and this request (-1: new connection). */
  idleMs: number;
  /** ms between this request and its failure. */
  afterMs: number;
  /** How long the connection's previous request took (-1: none). */
  prevMs: number;
}

export interface KeepAliveResult {
  requests: number;
  ok: number;
  failures: KeepAliveFailure[];
}

/** `stop` ends the load early (each connection finishes its request in flight). */
export async function keepAliveLoad(port: number, seconds: number, connections = 10, path = '/id', maxRequests = 2_000_000, stop?: AbortSignal): Promise<KeepAliveResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const end = Date.now() + seconds * 1000;
  const out: KeepAliveResult = { requests: 0, ok: 0, failures: [] };
  const seen = new WeakMap<Socket, { n: number; last: number; took: number }>();
  const one = () =>
    new Promise<void>((resolve) => {
      out.requests++;
      let sock: Socket | undefined;
      let info = { n: 0, last: -1, took: -1 };
      let sent = Date.now();
      const fail = (what: string) => {
        out.failures.push({ at: Date.now(), what, port: sock?.localPort ?? 0, before: info.n, idleMs: info.last < 0 ? -1 : sent - info.last, afterMs: Date.now() - sent, prevMs: info.took });
        resolve();
      };
      const req = request({ host: '127.0.0.1', port, path, agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (sock) seen.set(sock, { n: info.n + 1, last: Date.now(), took: Date.now() - sent });
          if (res.statusCode === 200) out.ok++;
          else return fail(`HTTP ${res.statusCode}`);
          resolve();
        });
        res.on('error', (e) => fail(`response: ${e.message}`));
      });
      req.on('socket', (s) => {
        sock = s;
        info = seen.get(s) ?? { n: 0, last: -1, took: -1 };
        sent = Date.now();
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => fail(`${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`));
      req.end();
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end && out.requests < maxRequests && !stop?.aborted) await one();
    }),
  );
  agent.destroy();
  return out;
}
