import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkGuardrails, tcpGone, type GuardBackend } from '../../src/engine/frontends/guardrails.js';

/**
 * The one guardrail definition (docs/run.md "Guardrails"), used by `elastic run` and `render`:
 * only suspicious removals (still answering, not drained, not failing) count and are refused;
 * additions and intended removals always go through.
 */
const b = (id: string): GuardBackend => ({ id, address: '198.18.0.9', port: 80 });
const ids = (...x: string[]) => x.map(b);
const g = { minBackends: 1, maxChangePct: 50, force: false };
const alive = async () => false;
const dead = async () => true;

describe('guardrails', () => {
  it.each([
    ['first sync, enough', undefined, ids('a'), g, alive, ['a'], [], false],
    ['first sync, empty: blocked', undefined, [], g, alive, [], ['min-backends'], true],
    ['first sync, empty allowed with min 0', undefined, [], { ...g, minBackends: 0 }, alive, [], [], false],
    ['empty answer while they still answer: kept', ids('a'), [], g, alive, ['a'], ['min-backends', 'max-change'], false],
    ['empty because every backend is gone: applied', ids('a'), [], g, dead, [], [], false],
    ['half removed ok', ids('a', 'b'), ids('a'), g, alive, ['a'], [], false],
    ['two of three removed, alive: refused, kept', ids('a', 'b', 'c'), ids('a'), g, alive, ['a', 'b', 'c'], ['max-change'], false],
    ['two of three removed, gone: applied', ids('a', 'b', 'c'), ids('a'), g, dead, ['a'], [], false],
    ['forced', ids('a', 'b', 'c'), ids('a'), { ...g, force: true }, alive, ['a'], [], false],
    ['replacement: removals refused, additions applied', ids('a', 'b'), ids('c', 'd'), g, alive, ['a', 'b', 'c', 'd'], ['max-change'], false],
  ] as const)('%s', async (_n, prev, next, guard, isGone, served, rules, blocked) => {
    const v = await checkGuardrails('web', prev, next, guard, { isGone });
    expect(v.backends.map((x) => x.id)).toEqual(served);
    expect(v.refusals.map((r) => r.rule)).toEqual(rules);
    expect(v.blocked).toBe(blocked);
  });

  it('drained and failing backends are intended removals: not counted, never probed', async () => {
    let probed = 0;
    const v = await checkGuardrails('web', ids('a', 'b', 'c', 'd', 'e'), ids('a'), g, { intended: new Set(['b', 'c', 'd', 'e']), isGone: async () => (probed++, false) });
    expect(v.backends.map((x) => x.id)).toEqual(['a']);
    expect(v.refusals).toEqual([]);
    expect(probed).toBe(0);
  });

  it('probes only when a rule would refuse', async () => {
    let probed = 0;
    await checkGuardrails('web', ids('a', 'b'), ids('a'), g, { isGone: async () => (probed++, false) });
    expect(probed).toBe(0);
  });
});

describe('tcpGone', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('a listener answers: not gone; a closed port: gone', async () => {
    expect(await tcpGone({ id: 'x', address: '127.0.0.1', port })).toBe(false);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const free = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect(await tcpGone({ id: 'y', address: '127.0.0.1', port: free })).toBe(true);
  });
});
