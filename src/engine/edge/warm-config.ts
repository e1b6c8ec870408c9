import type { EdgeListener } from './server.js';

/**
 * The HAProxy config of the warm path (pure): HAProxy owns the client ports; a connection whose
 * route has a free slot on a warm server (a local node's app port, `maxconn` = the node's
 * concurrency) goes straight to the app; everything else (a cold or full route: the backend's
 * last server; an unknown host, a bad request head, a slow one) goes to the edge's own listener
 * of the same kind, which holds, queues, answers and scales as without HAProxy. Membership changes are runtime API commands on
 * pre-declared server slots (`server-template`), never a reload.
 */
export interface WarmConfigInput {
  /** Public client listeners (HAProxy binds these), in the edge's order. */
  listeners: ReadonlyArray<EdgeListener & { port: number }>;
  address: string;
  /** The edge's internal listener port for each client listener (same order). */
  edgePorts: readonly number[];
  /** Host (exact or `*.parent`, lower case) -> route. */
  hosts: ReadonlyMap<string, string>;
  defaultRoute?: string;
  /** Route -> the loopback ports of its warm entries, one per thread (the edge hands held clients to HAProxy there). */
  entries: ReadonlyMap<string, readonly number[]>;
  /** HAProxy's threads (`nbthread`); each has its own backend per route (see threadShares). */
  threads: number;
  slots: number;
  queueTimeoutMs: number;
  headerTimeoutMs: number;
  statsSocket: string;
  /** HAProxy's global maxconn (each connection may take two descriptors: client and server). */
  maxconn: number;
}

/** A maxconn HAProxy can start with under a hard descriptor limit (it refuses to start otherwise). */
export function maxconnFor(hardNofile: number | null): number {
  if (hardNofile === null) return 8000;
  return Math.max(256, Math.min(8000, Math.floor((hardNofile - 200) / 2)));
}

/** A host name HAProxy may match on: what normaliseHost can return, with an optional `*.`. */
export const WARM_HOST = /^(\*\.)?[a-z0-9_](?:[a-z0-9_-]*)(?:\.[a-z0-9_-]+)*$/;

/** A route's backend of one thread (the thread before the first `_`: route names may hold `_`). */
export const backendOf = (route: string, thread: number) => `r${thread}_${route}`;
/** A route's warm entry of one thread, bound to that thread only. */
export const entryOf = (route: string, thread: number) => `w${thread}_${route}`;

/** HAProxy's threads for the warm path: two where there are two cores (the benchmark's need), else one. */
export const warmThreads = (cores: number) => Math.max(1, Math.min(2, Math.floor(cores)));

/**
 * A node's concurrency split over the threads' backends (their sum is the concurrency). Each
 * thread's backend is used by that thread only, so HAProxy's pick-then-take of a free slot
 * (`balance first`, then `served++`) never races another thread (docs/proxy.md, "Threads"). The
 * odd units go to the threads after the slot's own, so nodes of concurrency 1 alternate between
 * threads. A share of 0 leaves that thread's server in maintenance (maxconn 0 is unlimited).
 */
export function threadShares(concurrency: number, slot: number, threads: number): number[] {
  const base = Math.floor(concurrency / threads);
  const extra = concurrency % threads;
  return Array.from({ length: threads }, (_, t) => base + ((((t - slot) % threads) + threads) % threads < extra ? 1 : 0));
}
export const serverOf = (slot: number) => `n${slot}`;

const bindOf = (address: string, port: number) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/** Host rules in matchHost's order: exact names, then wildcards from the longest parent. */
export function hostRules(hosts: ReadonlyMap<string, string>): Array<{ acl: string; route: string }> {
  const exact = [...hosts].filter(([h]) => !h.startsWith('*.'));
  const wild = [...hosts].filter(([h]) => h.startsWith('*.')).sort((a, b) => b[0].length - a[0].length || a[0].localeCompare(b[0]));
  return [...exact.map(([h, r]) => ({ acl: `-m str ${h}`, route: r })), ...wild.map(([h, r]) => ({ acl: `-m end ${h.slice(1)}`, route: r }))];
}

export function warmConfig(i: WarmConfigInput): string {
  const s = (ms: number) => `${Math.max(1, Math.ceil(ms))}ms`;
  const out: string[] = [
    '# written by elastic proxy edge (warm path); do not edit',
    'global',
    `  maxconn ${i.maxconn}`,
    // `balance first` picks a server whose slot looks free, and the slot is taken a step later:
    // two threads sharing a backend can both pick the same last free slot (the loser waits in
    // that server's queue, where `timeout queue` closes a TCP client without an answer, or both
    // connect). So each thread has its own backend per route, used by no other thread, and a
    // node's concurrency is split over them (threadShares): the pick and the take are one step.
    `  nbthread ${i.threads}`,
    `  stats socket ${i.statsSocket} mode 600 level admin`,
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    // Long-lived connections (WebSocket, streaming) are the app's business, as through the edge.
    '  timeout client 1d',
    '  timeout server 1d',
    '  timeout tunnel 1d',
    // A node killed with -9: the connect to its app fails and the client goes to another slot.
    '  retries 2',
    '  option redispatch',
    '',
  ];
  const routes = [...i.entries.keys()];
  i.listeners.forEach((l, n) => {
    // The route's backend sends what its slots cannot take to this port: the edge's listener of
    // the client's kind (the `edge` server has no port of its own, it takes the destination's).
    out.push(`frontend c${n}`, `  bind ${bindOf(i.address, l.port)}`, `  tcp-request connection set-dst-port int(${i.edgePorts[n]})`, `  default_backend e${n}`);
    // A stream stays on the thread that accepted it (tcp mode): it uses that thread's backend.
    const threads = Array.from({ length: i.threads }, (_, t) => t);
    const use = (route: string, acls: string[]) =>
      threads.map((t) => {
        const cond = [...acls, ...(i.threads > 1 ? [`t${t}`] : [])];
        return `  use_backend ${backendOf(route, t)}${cond.length ? ` if ${cond.join(' ')}` : ''}`;
      });
    if (i.threads > 1) out.push(...threads.map((t) => `  acl t${t} thread ${t}`));
    if (l.kind === 'tcp') {
      const r = l.route ?? 'default';
      if (i.entries.has(r)) out.push(...use(r, []));
    } else {
      const fetch = l.kind === 'http' ? 'req.hdr(host),field(1,:),lower' : 'req.ssl_sni,lower';
      const ready = l.kind === 'http' ? 'HTTP' : '{ req.ssl_hello_type 1 }';
      out.push(`  tcp-request inspect-delay ${s(i.headerTimeoutMs)}`, `  tcp-request content accept if ${ready}`);
      // An unknown host goes to the edge (404 or its default route).
      hostRules(i.hosts).forEach((h, k) => {
        out.push(`  acl host${k} ${fetch} ${h.acl}`, ...use(h.route, [`host${k}`]));
      });
      if (i.defaultRoute && i.entries.has(i.defaultRoute)) out.push(...use(i.defaultRoute, []));
    }
    out.push(`backend e${n}`, `  server edge 127.0.0.1:${i.edgePorts[n]}`, '');
  });
  for (const r of routes) for (let t = 0; t < i.threads; t++) {
    out.push(
      // The edge hands held clients back here with a PROXY header whose destination is its
      // listener of the client's kind: if the slot it saw free is taken meanwhile, the client
      // comes back to the edge instead of waiting in a queue HAProxy cannot answer 503 from.
      // One entry per thread, bound to that thread: the edge picks the thread with a free share.
      `frontend ${entryOf(r, t)}`,
      `  bind 127.0.0.1:${i.entries.get(r)![t]} accept-proxy${i.threads > 1 ? ` thread ${t + 1}` : ''}`,
      `  default_backend ${backendOf(r, t)}`,
      `backend ${backendOf(r, t)}`,
      // Fill the first servers: the others go idle and are scaled down. The last server is the
      // edge without maxconn: a client no slot can take goes there (held, bounded, 503 +
      // Retry-After at the queue timeout), never into HAProxy's queue.
      '  balance first',
      `  timeout queue ${s(i.queueTimeoutMs)}`,
      // maxconn 1 until the edge sets the node's concurrency: a slot is never unlimited.
      `  server-template n 1-${i.slots} 127.0.0.1:1 disabled maxconn 1`,
      '  server edge 127.0.0.1',
      '',
    );
  }
  return out.join('\n');
}
