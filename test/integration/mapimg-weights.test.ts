import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { elastic } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../support/docker.js';
import { testNetwork } from '../support/flows.js';
import { createClientNamespace, type ClientNamespace } from '../support/netns.js';
import { ownedStateDir } from '../support/owned.js';
import { elasticTraces } from '../support/ruleset.js';

/**
 * Issue 18, weights: the `elastic.weight` label (Docker discovery) and `--backend IP:PORT@W`.
 * Three containers on the test's network (198.18.54.0/24) weighted 3, 1 and 0; 3,000 new
 * connections from three client namespaces (198.19.54.0/24): the 3:1 backends get 75% and 25%
 * of them, each within 10% of its share, and the weight-0 one gets none, on nft with
 * `--spread hash` and `--spread random` and on iptables (a weighted probability cascade).
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

afterAll(async () => {
  await elastic(['map-image', 'stop', '--all'], { env });
  await tc.cleanup();
  await docker.getImage(image).remove().catch(() => {});
  await net?.remove();
  for (const ns of clients) await ns.cleanup();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

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
