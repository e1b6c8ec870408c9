import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_PENDING_HANDSHAKES } from '../../src/engine/edge/server-nodes.js';
import { startEdge, startNode, type RunningEdge, type RunningNode } from '../../src/engine/proxy.js';
import { waitFor } from '../support/docker.js';
import { appCommand, FAST_APP } from '../support/proxy.js';

/**
 * Issue 13 item 6, the edge's node port: connections that never authenticate are capped while
 * they are pending, so a flood of them cannot hold unbounded sockets; real nodes join after.
 */
const dir = mkdtempSync(join(tmpdir(), 'ports-edge-'));
const TOKEN = 'ports-edge-token-0123456789abcdefghijklmnop';
const env = { ELASTIC_EDGE_TOKEN: TOKEN, ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
let edge: RunningEdge | null = null;
let node: RunningNode | null = null;
const sockets: Socket[] = [];

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await node?.node.stop('test over');
  await edge?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Connect and see whether the edge says anything (its CHALLENGE) or closes at once. */
function probe(port: number): Promise<'challenged' | 'closed'> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    s.on('error', () => {});
    s.once('data', () => resolve('challenged'));
    s.once('close', () => resolve('closed'));
  });
}

describe('edge node port', () => {
  it(`at most ${MAX_PENDING_HANDSHAKES} unauthenticated handshakes are held; the rest are closed on accept; a real node joins once they are gone`, async () => {
    edge = await startEdge({ listeners: [{ kind: 'tcp', port: 0, route: 'default' }], env, status: false, handshakeTimeoutMs: 20_000 });
    const results = [];
    for (let i = 0; i < MAX_PENDING_HANDSHAKES + 40; i++) results.push(await probe(edge.nodePort));
    expect(results.filter((r) => r === 'challenged')).toHaveLength(MAX_PENDING_HANDSHAKES);
    expect(results.filter((r) => r === 'closed')).toHaveLength(40);
    for (const s of sockets.splice(0)) s.destroy();
    node = await startNode({ edge: `127.0.0.1:${edge.nodePort}`, route: 'default', concurrency: 1, command: appCommand(FAST_APP), env: { ELASTIC_EDGE_TOKEN: TOKEN }, status: false, graceMs: 1000 });
    await waitFor(() => edge!.server.view().default?.nodes === 1, 'the real node joins', 10_000, 50);
  });
});
