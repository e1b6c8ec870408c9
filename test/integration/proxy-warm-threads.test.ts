import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEdge, startNode } from '../../src/engine/proxy.js';
import { waitFor } from '../support/docker.js';
import { appCommand, get, haproxyStats, proxyTestFiles, WARM_APP, warmHaproxyDir, type Reply } from '../support/proxy.js';

/**
 * The warm path's HAProxy in two threads (docs/proxy.md, "Threads"): each thread has its own
 * backend per route and a node's concurrency is split over them, so two threads never pick the
 * same free slot. Many concurrent clients (a new connection per request, slots turning over
 * every few ms) on nodes of concurrency 1 and 2: no app ever holds more than its concurrency,
 * HAProxy never queues a client nor goes above a server's maxconn, every client gets 200 (or
 * 503 + Retry-After), never a bare close, and both threads carry clients. And a node that joins
 * while the edge's HAProxy is still starting goes warm once it is up. Ports 28420-28459.
 */
const { dir, env, edges, nodes } = proxyTestFiles('elastic-proxy-threads-');

describe('proxy edge: the warm path in two HAProxy threads', () => {
  it('many concurrent clients: a node of concurrency 1 never carries 2, no HAProxy queue, no bare close, both threads serve', async () => {
    const e = await startEdge({ listeners: [{ kind: 'http', port: 28421 }], hosts: { 'web.test': 'web' }, env, status: false, warm: 'haproxy', warmThreads: 2, queueTimeoutMs: 10_000, retryAfterS: 5 });
    edges.push(e);
    // Three nodes of concurrency 1 (slots 1-3: their one unit alternates between the threads)
    // and one of concurrency 2 (one unit in each thread).
    const apps = [1, 1, 1, 2].map((concurrency, i) => ({ concurrency, overlap: join(dir, `overlap-${i}`) }));
    for (const a of apps) {
      const command = appCommand(WARM_APP, { DELAY_MS: 3, OVERLAP_FILE: a.overlap, MAX_OPEN: a.concurrency });
      nodes.push(await startNode({ edge: `127.0.0.1:${e.nodePort}`, route: 'web', concurrency: a.concurrency, command, env, status: false, graceMs: 2000 }));
    }
    await waitFor(() => e.server.view().web!.nodeList.filter((n) => n.warm).length === apps.length, 'every node warm', 20_000);
    // Bounded load: 40 clients, each a new connection per request, for 10 s and at most 400 requests each.
    const replies: Reply[] = [];
    const end = Date.now() + 10_000;
    await Promise.all(
      Array.from({ length: 40 }, async () => {
        for (let k = 0; k < 400 && Date.now() < end; k++) {
          replies.push(await get(28421, { host: 'web.test', timeoutMs: 15_000 }).catch((err: Error) => ({ status: 0, headers: {}, body: err.message })));
        }
      }),
    );
    expect(replies.filter((r) => r.status === 0).map((r) => r.body), 'clients closed without an answer').toEqual([]);
    expect(replies.filter((r) => r.status !== 200 && !(r.status === 503 && r.headers['retry-after'] === '5')).map((r) => `${r.status} ${r.body}`)).toEqual([]);
    expect(replies.filter((r) => r.status === 200).length).toBeGreaterThan(200);
    // HAProxy's view: one row per slot and thread. No client queued on a server, never more
    // sessions on a server than its maxconn (the node's share in that thread).
    const rows = (await haproxyStats(warmHaproxyDir(join(dir, 'run')))).filter((row) => /^r\d+_web$/.test(row[0]!) && /^n\d+$/.test(row[1]!));
    const used = rows.filter((row) => Number(row[7]) > 0);
    expect(used.filter((row) => row[3] !== '0').map((row) => `${row[0]}/${row[1]} qmax ${row[3]}`), 'clients HAProxy queued').toEqual([]);
    expect(used.filter((row) => Number(row[5]) > Number(row[6])).map((row) => `${row[0]}/${row[1]} smax ${row[5]} > slim ${row[6]}`), 'above maxconn').toEqual([]);
    for (const a of apps) expect(existsSync(a.overlap) ? readFileSync(a.overlap, 'utf8') : '', `an app of concurrency ${a.concurrency} held more`).toBe('');
    expect(new Set(used.map((row) => row[0])), 'both threads carried clients').toEqual(new Set(['r0_web', 'r1_web']));
  }, 90_000);

  it('a local node that joins before the edge HAProxy is up goes warm once it is (it stayed on the pull path)', async () => {
    // HAProxy that takes 1.5 s to check its config and 1.5 s to start: the node joins meanwhile.
    const slow = join(dir, 'slow-haproxy');
    writeFileSync(slow, '#!/bin/sh\nsleep 1.5\nexec haproxy "$@"\n', { mode: 0o700 });
    const starting = startEdge({ listeners: [{ kind: 'tcp', port: 28441, route: 'default' }], nodePort: 28442, env, status: false, warm: 'haproxy', haproxyBin: slow });
    starting.then((e) => edges.push(e), () => {});
    const n = await startNode({ edge: '127.0.0.1:28442', route: 'default', concurrency: 2, command: appCommand(WARM_APP), env, status: false, graceMs: 2000 });
    nodes.push(n);
    const e = await starting;
    expect(e.server.view().default!.nodes, 'the node joined while HAProxy was starting').toBe(1);
    await waitFor(() => e.server.view().default!.path === 'warm', 'the route warm', 10_000);
    expect((await get(28441)).status).toBe(200);
  }, 60_000);
});
