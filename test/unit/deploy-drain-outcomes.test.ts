import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { drainEverywhere } from '../../src/engine/deploy/drain.js';
import { StatusServer } from '../../src/engine/runtime/status.js';

/**
 * How deploy reads each load balancer's answer to `drain` (real status sockets): one that serves
 * the backend but fails to drain it is "failed" with its reason, never "not ours" (a CI run showed
 * "render...: not ours" for a render that served the backend; the reason was only in a debug log).
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-drain-outcomes-'));
const servers: StatusServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function serve(kind: string, name: string, drain: (args: Record<string, unknown>) => Promise<Record<string, unknown>>, services: Record<string, unknown> = {}) {
  const s = new StatusServer({ kind, name, dir, services: () => services, actions: { drain } });
  await s.listen();
  servers.push(s);
}

describe('drainEverywhere: each socket\'s answer', () => {
  it('drained, not ours, failed (with its reason), timeout', async () => {
    await serve('map-image', 'ok', async () => ({ drained: true, mappings: ['tcp-1'], remaining: 0 }));
    await serve('map-image', 'other', async () => ({ drained: true, mappings: [], remaining: 0 }));
    await serve('render', 'broken', async () => {
      throw new Error('HAProxy socket did not answer "set server be_web/s2" in 5000 ms');
    }, { web: { servers: [{ address: '198.18.0.4:80' }] } });
    await serve('render', 'elsewhere', async (args) => (args.service ? { drained: true } : { drained: true, remaining: 0, services: [] }));
    await serve('edge', 'slow', async () => ({ drained: false, remaining: 2 }));
    const out = await drainEverywhere({ service: 'web', address: '198.18.0.4', port: 80 }, 500, { runDir: dir });
    const by = Object.fromEntries(out.map((o) => [o.socket, o]));
    expect(by['map-image.ok']).toMatchObject({ outcome: 'drained', remaining: 0 });
    expect(by['map-image.other']).toMatchObject({ outcome: 'not ours' });
    expect(by['render.broken']).toMatchObject({ outcome: 'failed', detail: expect.stringContaining('did not answer') });
    expect(by['render.elsewhere']).toMatchObject({ outcome: 'not ours' });
    expect(by['edge.slow']).toMatchObject({ outcome: 'timeout', remaining: 2 });
  });
});
