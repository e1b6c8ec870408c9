import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEdge, startNode } from '../../src/engine/proxy.js';
import { waitFor } from '../support/docker.js';
import { appCommand, get, haproxyStats, proxyTestFiles, rawConnect, readAll, WARM_APP, warmHaproxyDir, type Reply } from '../support/proxy.js';

/**
 * Overflow on the warm path (docs/proxy.md, "Overflow and the queue"): a client that finds every
 * warm slot full (including one the edge hands back to HAProxy as a slot frees up and that loses
 * the slot to a new client) ends at the edge, never in HAProxy's queue: an HTTP client that
 * waits longer than --queue-timeout gets 503 + Retry-After, never a bare close, and the app of a
 * concurrency-1 node never holds 2 connections. Real HAProxy, real app. Ports 26800-26819.
 */

const { dir, env, edges, nodes } = proxyTestFiles('elastic-proxy-overflow-');

const haproxyDir = () => warmHaproxyDir(join(dir, 'run'));

describe('proxy edge: warm-path overflow', () => {
  it('clients over capacity for longer than the queue timeout: each gets 200 or 503 + Retry-After, the app never 2 at once', async () => {
    const overlap = join(dir, 'overlap');
    const e = await startEdge({ listeners: [{ kind: 'http', port: 26801 }], hosts: { 'web.test': 'web' }, env, status: false, warm: 'haproxy', queueTimeoutMs: 1000, retryAfterS: 5 });
    edges.push(e);
    const n = await startNode({ edge: `127.0.0.1:${e.nodePort}`, route: 'web', concurrency: 1, command: appCommand(WARM_APP, { DELAY_MS: 2500, OVERLAP_FILE: overlap }), env, status: false, graceMs: 2000 });
    nodes.push(n);
    await waitFor(() => e.server.view().web!.path === 'warm', 'the route warm');
    // Rounds of 30 clients at once, each round while the slot is free: one is served (2.5 s), the
    // others find the slot taken; 30 connections read HAProxy's free-slot count together and the
    // edge hands clients back as the slot frees, so some can reach the slot's queue (which on
    // main closed them at `timeout queue`).
    const replies: Reply[] = [];
    for (let round = 0; round < 4; round++) {
      replies.push(...(await Promise.all(Array.from({ length: 100 }, () => get(26801, { host: 'web.test', timeoutMs: 15_000 }).catch((err: Error) => ({ status: 0, headers: {}, body: err.message }))))));
    }
    const done = replies;
    const bare = done.filter((r) => r.status === 0).map((r) => r.body);
    expect(bare, 'clients closed without an answer').toEqual([]);
    const refused = done.filter((r) => r.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r.headers['retry-after']).toBe('5');
    expect(done.filter((r) => r.status !== 503 && r.status !== 200)).toEqual([]);
    expect(done.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(4);
    // HAProxy's own view first, so a failure says which side broke the limit: a client HAProxy
    // put in a slot's queue (closed there at `timeout queue`: tcp mode has no 503), or more
    // sessions on the slot than its maxconn.
    // (one row per slot and thread: each thread has its own backend, r<thread>_web)
    const slots = (await haproxyStats(haproxyDir())).filter((row) => /^r\d+_web$/.test(row[0]!) && /^n\d+$/.test(row[1]!));
    expect(slots.length).toBeGreaterThan(0);
    expect(slots.filter((row) => row[3] !== '0').map((row) => `${row[1]} qmax ${row[3]}`), 'clients HAProxy queued on a slot').toEqual([]);
    expect(slots.filter((row) => row[1] === 'n1' && row[5] !== '1' && row[5] !== '0').map((row) => `${row[1]} smax ${row[5]}`), 'HAProxy above the slot maxconn').toEqual([]);
    expect(existsSync(overlap) ? readFileSync(overlap, 'utf8') : '', 'the app held 2 connections').toBe('');
  }, 90_000);
  it('a hand-back that loses its slot to a new client: 503 + Retry-After at the queue timeout, not a close', async () => {
    const overlap = join(dir, 'overlap-handback');
    const e = await startEdge({ listeners: [{ kind: 'http', port: 26802 }], hosts: { 'web.test': 'web' }, env, status: false, warm: 'haproxy', queueTimeoutMs: 1000, retryAfterS: 5 });
    edges.push(e);
    nodes.push(await startNode({ edge: `127.0.0.1:${e.nodePort}`, route: 'web', concurrency: 1, command: appCommand(WARM_APP, { DELAY_MS: 3000, OVERLAP_FILE: overlap }), env, status: false, graceMs: 2000 }));
    await waitFor(() => e.server.view().web!.path === 'warm', 'the route warm');
    const busy = get(26802, { host: 'web.test' });
    await waitFor(() => e.server.view().web!.active === 1, 'the slot taken', 3000);
    // What the edge writes when it hands a held client to the route's entry (the ports from the
    // HAProxy config it wrote): the race where the slot it saw free was taken meanwhile.
    const cfg = readFileSync(join(haproxyDir(), 'haproxy.cfg'), 'utf8');
    // (one entry per HAProxy thread: all of them, so the one whose backend has the slot is hit)
    const entries = [...cfg.matchAll(/frontend w\d+_web\n {2}bind 127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    expect(entries.length).toBeGreaterThan(0);
    const edgeHttp = Number(/backend e0\n {2}server edge 127\.0\.0\.1:(\d+)/.exec(cfg)![1]);
    const handBacks = await Promise.all(
      entries.flatMap((entry) => [1, 2, 3].map((k) => ({ entry, k }))).map(async ({ entry, k }) => {
        const s = await rawConnect(entry);
        s.write(`PROXY TCP4 127.0.0.1 127.0.0.1 ${50000 + k} ${edgeHttp}\r\nGET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n`);
        return readAll(s, 10_000);
      }),
    );
    for (const h of handBacks) {
      expect(h.data, 'a hand-back closed without an answer').toMatch(/^HTTP\/1\.1 503 /);
      expect(h.data).toMatch(/\r\nRetry-After: 5\r\n/i);
    }
    expect((await busy).status).toBe(200);
    expect(existsSync(overlap)).toBe(false);
  }, 60_000);
});
