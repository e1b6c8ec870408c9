import { execa } from 'execa';
import { sleep } from '../../runtime/clock.js';
import { configBinds } from '../../runtime/ports.js';

/**
 * When may an nginx reload send QUIT to the old workers without cutting a keep-alive client?
 *
 * An old worker that takes QUIT closes at once every connection that sits in keep-alive state
 * (ngx_close_idle_connections), even one whose next request is already on its way: the client
 * sees a reset or EOF instead of a response (wrk: a read error). While the closing flag exists,
 * every request nginx reads is answered "Connection: close", so a connection becomes harmless
 * once its client has sent one more request. What is left are connections that were open when
 * the flag went up and have not asked since: one whose request is still in progress (a request
 * that met a vanished backend waits out proxy_connect_timeout; its response will still say
 * keep-alive) or whose response has just gone out (a busy client writes its next request within
 * milliseconds). So: the reload waits until each connection open when the flag went up is closed,
 * or quiet (no request pending and nothing sent for QUIET_MS): only clients idle that long still
 * race the close, the race every keep-alive client has with a server's idle timeout.
 *
 * The kernel's TCP info tells both (ss: lastrcv/lastsnd, ms since data last came in/went out on
 * nginx's side of the connection).
 */
export const QUIET_MS = 300;
/** At most this long: a request stuck past it (3 tries of proxy_connect_timeout 2s + answer) still races. */
export const TURNOVER_MAX_MS = 10_000;

export interface ClientConn {
  /** ms since nginx last received data on it (a request). */
  readonly rcv: number;
  /** ms since nginx last sent data on it (a response). */
  readonly snd: number;
  /** Segments with data received (requests) and sent (responses), ss data_segs_in/out. */
  readonly segsIn: number;
  readonly segsOut: number;
}

/** `listen` ports of the http block of an nginx config (stream services hold long TCP sessions). */
export function httpListenPorts(config: string): number[] {
  const http = config.split(/^\s*stream\s*\{/m)[0] ?? '';
  return [...new Set(configBinds('nginx', http).map((b) => b.port))].sort((a, b) => a - b);
}

/** Parse `ss -Htin` output: "local peer" -> lastrcv/lastsnd (absent: 0, i.e. just now) and data segment counts (absent: 0). */
export function parseSs(out: string): Map<string, ClientConn> {
  const conns = new Map<string, ClientConn>();
  let key: string | null = null;
  for (const line of out.split('\n')) {
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) {
      const f = line.trim().split(/\s+/);
      key = f.length >= 4 ? `${f[2]} ${f[3]}` : null;
      if (key) conns.set(key, { rcv: 0, snd: 0, segsIn: 0, segsOut: 0 });
      continue;
    }
    if (!key) continue;
    const ms = (name: string) => Number(new RegExp(`\\b${name}:(\\d+)`).exec(line)?.[1] ?? 0);
    conns.set(key, { rcv: ms('lastrcv'), snd: ms('lastsnd'), segsIn: ms('data_segs_in'), segsOut: ms('data_segs_out') });
  }
  return conns;
}

/**
 * Quiet: no request pending (the last data went out after the last came in) and nothing sent
 * for QUIET_MS. The kernel keeps these times in ticks (4 ms here), so "in the same tick" needs
 * the segment counts: a connection that has received a request but never sent a byte has its
 * first request in progress (its lastsnd is the handshake, the same tick as the request: that
 * once passed for quiet and let the reload cut it), and in the same tick a connection counts as
 * answered when it sent at least as many data segments as it received (each request one
 * segment, each response at least one; a request of several segments errs on waiting).
 */
export function isQuiet(c: ClientConn): boolean {
  if (c.segsIn > 0 && c.segsOut === 0) return false;
  if (c.snd > c.rcv || c.snd < QUIET_MS) return false;
  return c.snd < c.rcv || c.segsOut >= c.segsIn;
}

/** Established client connections on these local ports; null when `ss` cannot tell. */
export async function clientConns(ports: readonly number[]): Promise<Map<string, ClientConn> | null> {
  if (ports.length === 0) return new Map();
  const filter = ['(', ...ports.flatMap((p, i) => [...(i ? ['or'] : []), 'sport', '=', `:${p}`]), ')'];
  const r = await execa('ss', ['-Htin', 'state', 'established', ...filter], { reject: false, stdin: 'ignore', timeout: 5000 });
  return r.exitCode === 0 ? parseSs(String(r.stdout)) : null;
}

/**
 * Wait until every connection in `open` (taken once the flag existed) is closed or quiet, at
 * most `maxMs`. Resolves with the connections still busy at the end (empty: all turned over).
 */
export async function waitTurnover(ports: readonly number[], open: ReadonlyMap<string, ClientConn>, maxMs = TURNOVER_MAX_MS, everyMs = 20): Promise<string[]> {
  const end = Date.now() + maxMs;
  let busy = [...open.keys()];
  if (busy.length === 0) return busy;
  for (;;) {
    const now = await clientConns(ports);
    if (now === null) return busy;
    busy = busy.filter((k) => {
      const c = now.get(k);
      return c !== undefined && !isQuiet(c);
    });
    if (busy.length === 0 || Date.now() >= end) return busy;
    await sleep(everyMs);
  }
}
