import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultPromise } from 'execa';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { elastic } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../support/docker.js';
import { holdAcross, sendUdpFlow, tearDownMapimg, testNetwork, udpListener } from '../support/flows.js';
import { createClientNamespace, type ClientNamespace } from '../support/netns.js';
import { ownedStateDir } from '../support/owned.js';
import { elasticTraces } from '../support/ruleset.js';

/**
 * Issue 18, weights: the `elastic.weight` label (Docker discovery) and `--backend IP:PORT@W`.
 * Three containers on the test's network (198.18.54.0/24) weighted 3, 1 and 0; 3,000 new
 * connections from three client namespaces (198.19.54.0/24): the 3:1 backends get 75% and 25%
 * of them, each within 10% of its share, and the weight-0 one gets none, on nft with
 * `--spread hash` and `--spread random` and on iptables (a weighted probability cascade).
 *
 * Graceful removal: a backend taken out of the mapping gets no new connection at once while its
 * established TCP connections finish; UDP flows to it are purged, so no datagram reaches it after.
 */
const tc = new TestContainers();
const image = `mapimg-weight-${tc.runId}:1`;
const stateDir = ownedStateDir('mapimg-weight-state-');
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-weight-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const PORT = 25401;
let net: { name: string; remove: () => Promise<void> } | undefined;
const clients: ClientNamespace[] = [];
/** weight -> { address, hostname } */
const byWeight = new Map<number, { address: string; host: string }>();

/** 1,000 new connections from each client namespace: hostname -> count. */
async function spread(): Promise<Map<string, number>> {
  const total = new Map<string, number>();
  for (const m of await Promise.all(clients.map((ns) => ns.httpSpread(`http://${ns.hostAddress}:${PORT}/id`, 1000, { concurrency: 8, timeoutMs: 3000 })))) {
    for (const [k, v] of m) total.set(k, (total.get(k) ?? 0) + v);
  }
  return total;
}

function expectShares(counts: Map<string, number>) {
  const all = [...counts.values()].reduce((a, b) => a + b, 0);
  expect(counts.get('!error'), JSON.stringify([...counts])).toBeUndefined();
  expect(all).toBe(3000);
  const share = (w: number) => (counts.get(byWeight.get(w)!.host) ?? 0) / all;
  expect(Math.abs(share(3) - 0.75) / 0.75, `weight 3: ${share(3)}`).toBeLessThanOrEqual(0.1);
  expect(Math.abs(share(1) - 0.25) / 0.25, `weight 1: ${share(1)}`).toBeLessThanOrEqual(0.1);
  expect(counts.get(byWeight.get(0)!.host), 'weight 0 gets no new connection').toBeUndefined();
}

beforeAll(async () => {
  await requireDocker();
  await docker.getImage(TEST_IMAGE).tag({ repo: `mapimg-weight-${tc.runId}`, tag: '1' });
  net = await testNetwork(`mapimg-weight-${process.pid}`, '198.18.54.0/24', tc.runId);
  for (const w of [3, 1, 0]) {
    const c = await tc.run({ image, network: net.name, labels: w === 1 ? {} : { 'elastic.weight': String(w) } });
    const info = await c.inspect();
    byWeight.set(w, { address: info.NetworkSettings.Networks[net.name]!.IPAddress, host: info.Config.Hostname });
  }
  for (let i = 0; i < 3; i++) clients.push(await createClientNamespace({ name: `mgweight-${i}`, prefix: '198.19.54', index: i }));
}, 120_000);

afterAll(() => tearDownMapimg({ env, tc, image, net, namespaces: clients, dirs: [stateDir, runDir] }));

describe('map-image weights', () => {
  it('nft --spread hash, weights from the elastic.weight label: 3:1 within 10%, weight 0 gets none', async () => {
    const r = await elastic(['map-image', String(PORT), image, '80', '--dataplane', 'nft', '--spread', 'hash', '--json'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const view = JSON.parse(String(r.stdout)) as { mapping: { spread: string; backends: Array<{ address: string; weight: number }> } };
    expect(view.mapping.spread).toBe('hash');
    expect(Object.fromEntries(view.mapping.backends.map((b) => [b.address, b.weight]))).toEqual(Object.fromEntries([...byWeight].map(([w, b]) => [b.address, w])));
    expectShares(await spread());
  }, 180_000);

  const staticArgs = () => [...byWeight].flatMap(([w, b]) => ['--backend', `${b.address}:80@${w}`]);

  it('nft --spread random, weights from --backend IP:PORT@W: 3:1 within 10%, weight 0 gets none', async () => {
    expect((await elastic(['map-image', 'stop', String(PORT)], { env })).exitCode).toBe(0);
    const r = await elastic(['map-image', String(PORT), `mapimg-weight-none-${process.pid}:1`, '80', '--dataplane', 'nft', '--spread', 'random', ...staticArgs()], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expectShares(await spread());
  }, 180_000);

  it('iptables (a weighted probability cascade): 3:1 within 10%, weight 0 gets none', async () => {
    expect((await elastic(['map-image', 'stop', String(PORT)], { env })).exitCode).toBe(0);
    const r = await elastic(['map-image', String(PORT), `mapimg-weight-none-${process.pid}:1`, '80', '--dataplane', 'iptables', ...staticArgs()], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expectShares(await spread());
    expect((await elastic(['map-image', 'stop', '--all'], { env })).exitCode).toBe(0);
    expect(await elasticTraces(namespaceFor(stateDir))).toEqual([]);
  }, 180_000);

  it('a weight outside 0-256 is refused with one line', async () => {
    const r = await elastic(['map-image', String(PORT), `mapimg-weight-none-${process.pid}:1`, '80', '--backend', `${byWeight.get(1)!.address}:80@257`], { env });
    expect(r.exitCode, String(r.stderr)).toBe(2);
    expect(String(r.stderr)).toMatch(/invalid weight in backend/);
    expect(String(r.stderr).trim().split('\n')).toHaveLength(1);
  });
});

describe('map-image graceful removal', () => {
  const TCP_PORT = 25403;
  const UDP_PORT = 25404;
  const none = `mapimg-weight-none-${process.pid}:1`;
  const servers: ResultPromise[] = [];
  const udpBackends: ClientNamespace[] = [];

  afterAll(async () => {
    for (const p of servers) p.kill('SIGKILL');
    for (const ns of udpBackends) await ns.cleanup();
  });

  it('TCP: established connections to a removed backend finish on it; new connections avoid it at once', async () => {
    const [a, b] = [byWeight.get(3)!, byWeight.get(1)!];
    const map = (backends: Array<{ address: string }>) => elastic(['map-image', String(TCP_PORT), none, '80', '--dataplane', 'nft', ...backends.flatMap((x) => ['--backend', `${x.address}:80`])], { env });
    expect((await map([a, b])).exitCode).toBe(0);
    const ports = Array.from({ length: 20 }, (_, i) => 25440 + i);
    const answers = await holdAcross(clients[0]!, TCP_PORT, ports, async () => {
      const r = await map([b]);
      expect(r.exitCode, String(r.stderr)).toBe(0);
    });
    expect(answers.filter((h) => h !== a.host && h !== b.host), 'every held connection answered').toEqual([]);
    expect(answers.filter((h) => h === a.host).length, 'some held connections were on the removed backend').toBeGreaterThan(0);
    const after = await clients[0]!.httpSpread(`http://${clients[0]!.hostAddress}:${TCP_PORT}/id`, 50, { concurrency: 4, timeoutMs: 3000 });
    expect([...after]).toEqual([[b.host, 50]]);
  }, 120_000);

  it('UDP: after removal no datagram of a flow reaches the removed backend (its conntrack entries are purged); backends see the client address', async () => {
    // Two UDP backends in network namespaces (the test image has no UDP server): each prints what it receives.
    const received = new Map<string, string[]>();
    for (const i of [5, 6]) {
      const ns = await createClientNamespace({ name: `mgudp-${i}`, prefix: '198.19.54', index: i });
      udpBackends.push(ns);
      const { lines, proc } = await udpListener(ns, 9000);
      received.set(ns.clientAddress, lines);
      servers.push(proc);
    }
    const addrs = [...received.keys()];
    const map = (backends: string[]) => elastic(['map-image', String(UDP_PORT), none, '9000', '--protocol', 'udp', '--dataplane', 'nft', ...backends.flatMap((x) => ['--backend', `${x}:9000`])], { env });
    expect((await map(addrs)).exitCode).toBe(0);
    const ns = clients[0]!;
    // 20 datagrams from one source port (one conntrack flow), 50 ms apart.
    const send = (tag: string) => sendUdpFlow(ns, 25460, ns.hostAddress, UDP_PORT, tag);
    await send('before');
    const got = (addr: string, tag: string) => received.get(addr)!.filter((l) => l.startsWith(tag)).length;
    const first = addrs.find((x) => got(x, 'before') > 0)!;
    const other = addrs.find((x) => x !== first)!;
    expect([got(first, 'before'), got(other, 'before')]).toEqual([20, 0]); // one flow, one backend
    expect((await map([other])).exitCode).toBe(0);
    await send('after');
    expect([got(first, 'after'), got(other, 'after')]).toEqual([0, 20]);
    // No SNAT on the way in: the backend sees the real client address (docs/map-image.md, "Client source address").
    const datagrams = [...received.values()].flat().filter((l) => /^(before|after)\d/.test(l));
    expect(datagrams).toHaveLength(40);
    expect(new Set(datagrams.map((l) => l.split(' ')[1]))).toEqual(new Set([ns.clientAddress]));
    expect((await elastic(['map-image', 'stop', '--all'], { env })).exitCode).toBe(0);
  }, 120_000);
});
