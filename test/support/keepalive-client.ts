import { Agent, request } from 'node:http';

/**
 * A small keep-alive HTTP client for membership-change tests: `connections` sockets, each sending
 * GET requests back to back until `seconds` pass (bounded in time and by `maxRequests`), never
 * retrying. Every failure is recorded with its time and cause, so a test can say which event
 * (reload, removal) it belongs to. Counterpart of wrk, whose summary says only how many.
 */
export interface KeepAliveResult {
  requests: number;
  ok: number;
  failures: Array<{ at: number; what: string }>;
}

/** `stop` ends the load early (each connection finishes its request in flight). */
export async function keepAliveLoad(port: number, seconds: number, connections = 10, path = '/id', maxRequests = 2_000_000, stop?: AbortSignal): Promise<KeepAliveResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const end = Date.now() + seconds * 1000;
  const out: KeepAliveResult = { requests: 0, ok: 0, failures: [] };
  const one = () =>
    new Promise<void>((resolve) => {
      out.requests++;
      const req = request({ host: '127.0.0.1', port, path, agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) out.ok++;
          else out.failures.push({ at: Date.now(), what: `HTTP ${res.statusCode}` });
          resolve();
        });
        res.on('error', (e) => (out.failures.push({ at: Date.now(), what: `response: ${e.message}` }), resolve()));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => (out.failures.push({ at: Date.now(), what: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` }), resolve()));
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
