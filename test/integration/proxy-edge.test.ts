import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEdge, startNode, type EdgeOptions, type RunningEdge, type RunningNode } from '../../src/engine/proxy.js';
import { authPayload, encodeFrame, FrameReader, FrameType, newNonce } from '../../src/engine/edge/protocol.js';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { appCommand, expectRefused, FAST_APP, get, rawConnect, readAll, SLOW_APP, TEST_TOKEN } from '../support/proxy.js';

/**
 * The edge and nodes in-process (engine functions) where the test needs fine control, with real
 * sockets and real app processes; nodes that must be killed with -9 are real `elastic proxy node`
 * processes. Everything on 127.0.0.1, ports chosen by the kernel.
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-proxy-'));
process.env.ELASTIC_RUN_DIR = join(dir, 'run');
process.env.ELASTIC_STATE_DIR = join(dir, 'state');
const env = { ELASTIC_EDGE_TOKEN: TEST_TOKEN };

const edges: RunningEdge[] = [];
const nodes: RunningNode[] = [];
const procs: ResultPromise[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.pid) {
      try {
        process.kill(-p.pid, 'SIGKILL'); // the node's process group: the node and its app
      } catch {}
    }
    await p;
  }
  await Promise.all(nodes.splice(0).map((n) => n.node.stop('test over')));
  await Promise.all(edges.splice(0).map((e) => e.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function edge(opts: Partial<EdgeOptions> = {}): Promise<RunningEdge> {
  const e = await startEdge({ listeners: [{ kind: 'tcp', port: 0, route: 'default' }], env, status: false, queueTimeoutMs: 20_000, ...opts });
  edges.push(e);
  return e;
}

async function node(e: RunningEdge, command: string[], opts: { route?: string; concurrency?: number; token?: string } = {}): Promise<RunningNode> {
  const n = await startNode({
    edge: `127.0.0.1:${e.nodePort}`,
    route: opts.route ?? 'default',
    concurrency: opts.concurrency ?? 1,
    command,
    env: { ELASTIC_EDGE_TOKEN: opts.token ?? TEST_TOKEN },
    status: false,
    graceMs: 2000,
  });
  nodes.push(n);
  return n;
}

/** A real `elastic proxy node` process, group leader so the test can kill it and its app. */
function nodeProcess(e: RunningEdge, command: string[]): ResultPromise {
  const p = execa(process.execPath, [BIN, 'proxy', 'node', '--edge', `127.0.0.1:${e.nodePort}`, '--', ...command], {
    env: { ...env, CI: 'true' },
    detached: true,
    reject: false,
    stdin: 'ignore',
  });
  procs.push(p);
  return p;
}

const route = (e: RunningEdge, name = 'default') => e.server.view()[name]!;

describe('proxy edge + node (in-process, real sockets and apps)', () => {
  it('a node with concurrency 1 never carries 2 connections at once (the app asserts it)', async () => {
    const overlap = join(dir, 'overlap-1');
    const e = await edge();
    await node(e, appCommand(SLOW_APP, { DELAY_MS: 150, OVERLAP_FILE: overlap }));
    await waitFor(() => route(e).idle === 1, 'the node slot');
    const replies = await Promise.all(Array.from({ length: 6 }, () => get(e.clientPorts[0]!)));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(existsSync(overlap)).toBe(false);
    expect(route(e).served).toBe(6);
    expect(route(e).waitP99Ms).toBeGreaterThan(0);
  });

  it('a node with concurrency 3 carries up to 3 at once, never more', async () => {
    const e = await edge();
    await node(e, appCommand(FAST_APP), { concurrency: 3 });
    await waitFor(() => route(e).idle === 3, 'three slots');
    expect(route(e)).toMatchObject({ capacity: 3, nodes: 1 });
    const replies = await Promise.all(Array.from({ length: 30 }, () => get(e.clientPorts[0]!)));
    expect(replies.every((r) => r.status === 200 && r.body.startsWith('fast '))).toBe(true);
    expect(e.server.counters.nodesRefused).toBe(0);
    // Wire version 2: each pull connection carried client after client (no reconnect, no new handshake).
    expect(e.server.counters.nodeHandshakes).toBe(3);
  });

  it('a client whose handoff dies before READY is given to another node with all its bytes', async () => {
    const e = await edge();
    await node(e, appCommand(FAST_APP));
    await waitFor(() => route(e).idle === 1, 'the real node');
    // A node that authenticates, takes a client, and dies before READY. It joins last, so the
    // edge's idle stack hands it the next client.
    const s = await rawConnect(e.nodePort);
    const reader = new FrameReader(s);
    const challenge = await reader.next(2000);
    s.write(encodeFrame(FrameType.auth, authPayload(Buffer.from(TEST_TOKEN), challenge.payload, { node: 'flaky', route: 'default', concurrency: 1, pid: 1 }).payload));
    expect((await reader.next(2000)).type).toBe(FrameType.welcome);
    await waitFor(() => route(e).idle === 2, 'the flaky node idle');
    const reply = get(e.clientPorts[0]!, { path: '/replayed' });
    const client = await reader.next(5000);
    expect(client.type).toBe(FrameType.client);
    expect(JSON.parse(client.payload.toString())).toMatchObject({ route: 'default' });
    s.destroy(); // dies before READY: nothing reached an app
    const r = await reply;
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^fast \d+/);
    expect(route(e).requeued).toBe(1);
  });

  it('kill -9 of a node: clients queued behind it are served by another node', async () => {
    const e = await edge();
    const a = nodeProcess(e, appCommand(SLOW_APP, { DELAY_MS: 1500 }));
    await waitFor(() => route(e).idle === 1, 'node A', 20_000);
    const b = nodeProcess(e, appCommand(SLOW_APP, { DELAY_MS: 1500 }));
    await waitFor(() => route(e).idle === 2, 'node B', 20_000);
    const replies = Array.from({ length: 4 }, () => get(e.clientPorts[0]!).then((r) => r, (err: Error) => ({ status: 0, body: err.message, headers: {} })));
    await waitFor(() => route(e).active === 2 && route(e).queued === 2, 'two active, two queued');
    process.kill(a.pid!, 'SIGKILL');
    await waitFor(() => route(e).capacity === 1, 'the edge noticing the dead node', 3000);
    const done = await Promise.all(replies);
    const ok = done.filter((r) => r.status === 200);
    // The one in flight on A is lost (the app had it); every queued client is served, by B.
    expect(ok.length).toBe(3);
    expect(new Set(ok.slice(-2).map((r) => r.body.split(' ')[1])).size).toBe(1);
    expect(b.exitCode).toBeNull();
  });

  it('queue timeout: HTTP clients get 503 with Retry-After, TCP clients a close; a full queue refuses at once', async () => {
    const e = await edge({
      listeners: [
        { kind: 'http', port: 0 },
        { kind: 'tcp', port: 0, route: 'raw' },
      ],
      defaultRoute: 'web',
      queueTimeoutMs: 300,
      retryAfterS: 7,
      maxQueue: 1,
    });
    const first = get(e.clientPorts[0]!);
    await waitFor(() => route(e, 'web').queued === 1, 'one queued');
    expectRefused(await get(e.clientPorts[0]!), /queue full/);
    expectRefused(await first, /queue timeout/, '7');
    const tcp = await rawConnect(e.clientPorts[1]!);
    tcp.write('hello');
    expect(await readAll(tcp, 5000)).toEqual({ data: '', closed: true });
    expect(route(e, 'web')).toMatchObject({ timeouts: 1, rejected: 1, queued: 0 });
    expect(route(e, 'raw').timeouts).toBe(1);
  });

  it('bad token: refused and counted; the node exits with an error', async () => {
    const e = await edge();
    const n = await startNode({ edge: `127.0.0.1:${e.nodePort}`, command: appCommand(FAST_APP), env: { ELASTIC_EDGE_TOKEN: 'not-the-right-token-at-all' }, status: false, graceMs: 2000 });
    const exit = await n.node.done;
    expect(exit.code).toBe(1);
    expect(exit.reason).toMatch(/refused our token/);
    expect(e.server.counters.authFailures).toBeGreaterThanOrEqual(1);
    expect(route(e).nodes).toBe(0);
  });

  it('garbled and silent handshakes are dropped and counted', async () => {
    const e = await edge({ handshakeTimeoutMs: 300 });
    const garbled = await rawConnect(e.nodePort);
    garbled.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await readAll(garbled)).closed).toBe(true);
    const silent = await rawConnect(e.nodePort);
    expect((await readAll(silent)).closed).toBe(true);
    // A replayed AUTH (answer to another challenge) is a bad token.
    const replay = await rawConnect(e.nodePort);
    const r = new FrameReader(replay);
    await r.next(2000);
    replay.write(encodeFrame(FrameType.auth, authPayload(Buffer.from(TEST_TOKEN), newNonce(), { node: 'x', route: 'default', concurrency: 1, pid: 1 }).payload));
    const answer = await r.next(2000);
    expect(answer.type).toBe(FrameType.refused);
    expect(answer.payload.toString()).toBe('auth');
    expect(e.server.counters).toMatchObject({ garbled: 1, authFailures: 1, handshakeTimeouts: 1 });
    expect(route(e).nodes).toBe(0);
  });

  it('Host routing: case-insensitive, wildcard, 404 for an unknown host, 408 for a slow head, 431 for a huge one', async () => {
    const e = await edge({ listeners: [{ kind: 'http', port: 0 }], hosts: { 'a.example': 'a', '*.b.example': 'b' }, headerTimeoutMs: 300, headerMaxBytes: 1024 });
    const na = await node(e, appCommand(FAST_APP), { route: 'a' });
    const nb = await node(e, appCommand(FAST_APP), { route: 'b' });
    await waitFor(() => route(e, 'a').idle === 1 && route(e, 'b').idle === 1, 'both nodes');
    const port = e.clientPorts[0]!;
    expect((await get(port, { host: 'A.Example:8080' })).body).toBe(`fast ${na.node.view().appPid}\n`);
    expect((await get(port, { host: 'x.B.example' })).body).toBe(`fast ${nb.node.view().appPid}\n`);
    const unknown = await get(port, { host: 'c.example' });
    expect(unknown.status).toBe(404);
    const slow = await rawConnect(port);
    slow.write('GET / HTTP/1.1\r\nHost: a.exa');
    const answer = await readAll(slow);
    expect(answer.data).toMatch(/^HTTP\/1\.1 408 /);
    const huge = await rawConnect(port);
    huge.write(`GET / HTTP/1.1\r\nHost: a.example\r\nX: ${'x'.repeat(2000)}\r\n\r\n`);
    expect((await readAll(huge)).data).toMatch(/^HTTP\/1\.1 431 /);
    expect(e.server.counters).toMatchObject({ headerTimeouts: 1, noRoute: 1, badRequests: 1 });
  });

  it('drain through the status socket: no new client for the node, answered when it carries none', async () => {
    const e = await edge({ status: true, name: 'proxy-drain-test' });
    const n = await node(e, appCommand(SLOW_APP, { DELAY_MS: 400 }));
    await waitFor(() => route(e).idle === 1, 'the node');
    const inflight = get(e.clientPorts[0]!);
    await waitFor(() => route(e).active === 1, 'a client on the node');
    const drained = await requestStatus<{ ok: boolean; drained: boolean; remaining: number }>(
      e.status!.path,
      { op: 'action', action: 'drain', args: { address: '127.0.0.1', port: n.node.view().appPort, timeoutMs: 5000 } },
      8000,
    );
    expect(drained).toMatchObject({ ok: true, drained: true, remaining: 0 });
    expect((await inflight).status).toBe(200);
    const waiting = get(e.clientPorts[0]!);
    await waitFor(() => route(e).queued === 1, 'a client waiting: the node is drained');
    const snap = await requestStatus(e.status!.path);
    expect(snap.kind).toBe('edge');
    expect(snap.services.default).toMatchObject({ queued: 1, nodes: 1 });
    await requestStatus(e.status!.path, { op: 'action', action: 'undrain', args: { node: n.node.id } });
    expect((await waiting).status).toBe(200);
  });
});

describe('proxy node alone', () => {
  it('stops the app and exits after its own idle timeout', async () => {
    const e = await edge();
    const n = await startNode({ edge: `127.0.0.1:${e.nodePort}`, command: appCommand(FAST_APP), env, status: false, idleTimeoutMs: 500, graceMs: 2000 });
    const appPid = n.node.view().appPid!;
    expect((await get(e.clientPorts[0]!)).status).toBe(200);
    const exit = await n.node.done;
    expect(exit).toMatchObject({ code: 0, reason: expect.stringMatching(/idle/) });
    await waitFor(() => !existsSync(`/proc/${appPid}`) || readFileSync(`/proc/${appPid}/stat`, 'utf8').includes(') Z'), 'the app gone');
  });
});
