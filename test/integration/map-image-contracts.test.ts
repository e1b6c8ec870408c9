import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../support/docker.js';
import { createClientNamespace, type ClientNamespace } from '../support/netns.js';
import { snapshotRuleset, type RulesetSnapshot } from '../support/ruleset.js';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { drainBackend, mapImage, readAllBackendCounters, stopAllMappings, stopMapping } from '../../src/engine/map-image.js';
import { listFlows } from '../../src/engine/dataplane/conntrack.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * The contracts other features use: deploy's "remove this backend, tell me when drained" and the
 * per-backend counters `top` reads. Real containers, a real held connection, real conntrack.
 */
const tc = new TestContainers();
const image = `mapimg-ctr-${tc.runId}:1`;
const stateDir = ownedStateDir('mapimg-ctr-state-');
// This run's own kernel objects: tests never see other state directories' (namespace.ts).
const own = namespaceFor(stateDir);
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-ctr-run-'));
let ns: ClientNamespace;
let before: RulesetSnapshot;

beforeAll(async () => {
  await requireDocker();
  process.env.ELASTIC_STATE_DIR = stateDir;
  process.env.ELASTIC_RUN_DIR = runDir;
  await docker.getImage(TEST_IMAGE).tag({ repo: `mapimg-ctr-${tc.runId}`, tag: '1' });
  for (let i = 0; i < 2; i++) await tc.run({ image, name: `mapimg-${tc.runId}-${i}` });
  ns = await createClientNamespace({ name: 'mapimg-ctr', prefix: '198.19.3', index: 1 });
  before = await snapshotRuleset(own);
});

// A failed test must not leave a mapping for the next one: remove every mapping and elastic object.
afterEach(async () => {
  await stopAllMappings().catch(() => {});
});

afterAll(async () => {
  await stopAllMappings().catch(() => {});
  await tc.cleanup();
  await docker.getImage(image).remove().catch(() => {});
  await ns?.cleanup();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

describe.each(['nft', 'iptables'] as const)('drain and counters (%s)', (plane) => {
  it('drain takes a backend out at once and reports drained only when its last flow ends', async () => {
    const port = plane === 'nft' ? 18350 : 18351;
    const mapped = await mapImage({ port, protocol: 'tcp', image, containerPort: 80, dataplane: plane, staticBackends: [] }, new AbortController().signal);
    expect(mapped.mapping.backends).toHaveLength(2);

    // A connection held open (the client sends nothing; httpd waits): one ESTABLISHED flow.
    const held = execa('ip', ['netns', 'exec', ns.name, 'busybox', 'nc', ns.hostAddress, String(port)], { reject: false, stdin: 'pipe', timeout: 60_000 });
    let flows = await listFlows('tcp', port);
    for (let i = 0; i < 100 && !flows.some((f) => f.state === 'ESTABLISHED'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      flows = await listFlows('tcp', port);
    }
    const target = flows.find((f) => f.state === 'ESTABLISHED')!;
    expect(target).toBeDefined();
    try {
      const r = await drainBackend({ address: target.address, port: target.targetPort }, { timeoutMs: 800, pollMs: 100 });
      expect(r).toMatchObject({ drained: false, remaining: 1, mappings: [`tcp-${port}`] });
      // New connections all go to the other backend meanwhile.
      const counts = await ns.httpSpread(`http://${ns.hostAddress}:${port}/id`, 30);
      expect(counts.get('!error')).toBeUndefined();
      expect(counts.size).toBe(1);
    } finally {
      held.kill('SIGTERM');
      await held;
    }
    const done = await drainBackend({ address: target.address, port: target.targetPort }, { timeoutMs: 10_000, pollMs: 100 });
    expect(done.drained).toBe(true);

    // Counters for every mapping, per serving backend, from the kernel (a drained backend has left
    // the DNAT set, and its counter with it): the 30 new connections all went to the other one.
    const { counters } = await readAllBackendCounters();
    const per = counters.get(`tcp-${port}`)!;
    expect(per.has(`${target.address}:${target.targetPort}`)).toBe(false);
    expect([...per.values()].reduce((n, c) => n + c.packets, 0)).toBeGreaterThanOrEqual(30);
    await stopMapping(port, 'tcp');
    expect(await snapshotRuleset(own)).toEqual(before);
  });
});
