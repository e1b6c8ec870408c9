import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { BIN, elastic } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { createClientNamespace, type ClientNamespace } from '../support/netns.js';
import { elasticTraces, snapshotRuleset, type RulesetSnapshot } from '../support/ruleset.js';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { mapImage, stopMapping, stopAllMappings, type ListResult } from '../../src/engine/map-image.js';
import { ownedStateDir } from '../support/owned.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';

/**
 * map-image end to end, on both data planes: a client namespace (198.19.3.0/24) -> DNAT in the
 * root namespace -> real containers of a test-only image tag. The built binary is what runs;
 * the ruleset after each test must be the one before it.
 */
const tc = new TestContainers();
const image = `mapimg-web-${tc.runId}:1`;
const stateDir = ownedStateDir('mapimg-state-');
// This run's own kernel objects: tests never see other state directories' (namespace.ts).
const own = namespaceFor(stateDir);
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-run-'));
// TMPDIR: transaction files of the processes a test kills with -9 stay in a directory of ours.
const scratchDir = mkdtempSync(join(tmpdir(), 'mapimg-tmp-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir, TMPDIR: scratchDir };
let ns: ClientNamespace;
let before: RulesetSnapshot;
const children: ResultPromise[] = [];

async function startBackend(): Promise<string> {
  const c = await tc.run({ image, name: `mapimg-${tc.runId}-${Math.random().toString(36).slice(2, 7)}` });
  return (await c.inspect()).Config.Hostname;
}

async function list(): Promise<ListResult> {
  const r = await elastic(['map-image', 'list', '--json'], { env });
  expect(r.exitCode, String(r.stderr)).toBe(0);
  return JSON.parse(String(r.stdout)) as ListResult;
}

async function expectRulesetRestored(): Promise<void> {
  expect(await elasticTraces(own)).toEqual([]);
  expect(await snapshotRuleset(own)).toEqual(before);
}

/** What the kernel holds for one mapping: DNAT targets, entries in the spread, hook rules. */
async function programmed(plane: string, port: number): Promise<{ targets: string[]; spread: number; hooks: number }> {
  const id = `tcp-${port}`;
  if (plane === 'nft') {
    const r = await execa('nft', ['list', 'table', 'ip', own.nftTable], { reject: false });
    const text = r.exitCode === 0 ? r.stdout : '';
    // The spread map: slot -> address . port; every slot 0..N-1 present once, N = the rule's `mod N`
    // (random: one slot per backend; hash, the default: a Maglev table of M slots over the backends).
    const map = new RegExp(`map spread_tcp_${port} \\{[^}]*elements = \\{([^}]*)\\}`).exec(text)?.[1] ?? '';
    const slots = [...map.matchAll(/(\d+) : (\S+) \. (\d+)/g)].map((m) => ({ slot: Number(m[1]), target: `${m[2]}:${m[3]}` }));
    const svc = new RegExp(`chain svc_tcp_${port} \\{\\n([^}]*)\\}`).exec(text)?.[1] ?? '';
    const mod = Number(/mod (\d+)(?: seed \S+)? map/.exec(svc)?.[1] ?? 0);
    const hash = /jhash /.test(svc);
    if (slots.length > 0 || !hash) expect(slots.map((s) => s.slot).sort((a, b) => a - b)).toEqual(Array.from({ length: mod }, (_, i) => i));
    const targets = hash ? [...new Set(slots.map((s) => s.target))] : slots.map((s) => s.target);
    const pre = /chain prerouting \{([^}]*)\}/.exec(text)?.[1] ?? '';
    return { targets: targets.sort(), spread: hash ? targets.length : mod, hooks: pre.split('\n').filter((l) => l.includes(`elastic:${id}"`)).length };
  }
  const text = (await execa('iptables-save', ['-t', 'nat'])).stdout;
  const targets = [...text.matchAll(new RegExp(`--comment "elastic:${id} (\\S+)" .*-j DNAT`, 'g'))].map((m) => m[1]!);
  const spread = text.split('\n').filter((l) => l.startsWith(`-A ${own.chainPrefix}SVC-TCP-${port} `)).length;
  const hooks = text.split('\n').filter((l) => l.startsWith(`-A ${own.chainPrefix}PREROUTING `) && l.includes(`elastic:${id}"`)).length;
  const builtinHooks = text.split('\n').filter((l) => l.startsWith('-A PREROUTING ') && l.includes('elastic:hook')).length;
  expect(builtinHooks).toBeLessThanOrEqual(1);
  return { targets: targets.sort(), spread, hooks };
}

function within(count: number, fair: number): boolean {
  return count >= fair * 0.7 && count <= fair * 1.3;
}

beforeAll(async () => {
  await requireDocker();
  process.env.ELASTIC_STATE_DIR = stateDir;
  process.env.ELASTIC_RUN_DIR = runDir;
  await docker.getImage(TEST_IMAGE).tag({ repo: `mapimg-web-${tc.runId}`, tag: '1' });
  ns = await createClientNamespace({ name: 'mapimg-cli', prefix: '198.19.3', index: 0 });
  before = await snapshotRuleset(own);
});

// A failed test must not leave a mapping for the next one: remove every mapping and elastic object.
afterEach(async () => {
  for (const c of children) if (c.exitCode === null && c.pid) await Promise.resolve().then(() => process.kill(c.pid!, 'SIGKILL')).catch(() => {});
  await stopAllMappings().catch(() => {});
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid) await Promise.resolve().then(() => process.kill(c.pid!, 'SIGKILL')).catch(() => {});
  await stopAllMappings().catch(() => {});
  await tc.cleanup();
  await docker.getImage(image).remove().catch(() => {});
  await ns?.cleanup();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
  rmSync(scratchDir, { recursive: true, force: true });
});

describe.each([
  ['nft', 18300],
  ['iptables', 18320],
])('map-image on the %s data plane', (plane, base) => {
  const hosts: string[] = [];

  beforeAll(async () => {
    await tc.cleanup();
    hosts.length = 0;
    for (let i = 0; i < 3; i++) hosts.push(await startBackend());
  });

  it('spreads ~300 connections from a client namespace evenly, counts them per backend, and stop restores the ruleset', async () => {
    const port = base;
    const r = await elastic(['map-image', String(port), image, '80', '--dataplane', plane, '--json'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(JSON.parse(String(r.stdout)).mapping.backends).toHaveLength(3);

    const counts = await ns.httpSpread(`http://${ns.hostAddress}:${port}/id`, 300);
    expect(counts.get('!error')).toBeUndefined();
    for (const h of hosts) expect(within(counts.get(h) ?? 0, 100), `${h}: ${JSON.stringify([...counts])}`).toBe(true);

    // Kernel counters: for TCP one nat packet per connection, so they equal what the client saw.
    const listed = (await list()).mappings.find((m) => m.port === port)!;
    expect(listed.dataplane).toBe(plane);
    for (const b of listed.backends) expect(b.packets).toBe(counts.get(b.id.slice('docker:'.length)) ?? 0);

    // A local client (OUTPUT hook) reaches the mapping on a local non-loopback address too.
    const local = await execa('busybox', ['wget', '-qO-', `http://${ns.hostAddress}:${port}/id`], { timeout: 10_000 });
    expect(hosts).toContain(local.stdout.trim());

    const s = await elastic(['map-image', 'stop', String(port), '--json'], { env });
    expect(s.exitCode, String(s.stderr)).toBe(0);
    await expectRulesetRestored();
  });

  it('--watch (a real child process) follows containers: new ones get traffic, a stopped one none', async () => {
    const port = base + 1;
    const child = execa(process.execPath, [BIN, 'map-image', String(port), image, '80', '--watch', '--dataplane', plane], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
    children.push(child);
    const err = new LineReader(child.stderr!);
    onTestFailed(() => console.error(`--watch stderr:\n${err.lines.join('\n')}`));
    await err.next((l) => l.includes(`applied tcp-${port}: 3 backend(s)`), 'first apply', 20_000);

    const added = [await startBackend(), await startBackend()];
    await waitFor(async () => (await list()).mappings.find((m) => m.port === port)?.backends.length === 5, 'two new backends programmed', 15_000);
    const counts = await ns.httpSpread(`http://${ns.hostAddress}:${port}/id`, 200);
    expect(counts.get('!error')).toBeUndefined();
    for (const h of [...hosts, ...added]) expect(counts.get(h) ?? 0, h).toBeGreaterThan(0);

    const gone = added[0]!;
    await docker.getContainer(gone).kill();
    await waitFor(async () => (await list()).mappings.find((m) => m.port === port)?.backends.length === 4, 'stopped backend removed', 15_000);
    const after = await ns.httpSpread(`http://${ns.hostAddress}:${port}/id`, 120);
    expect(after.get('!error')).toBeUndefined();
    expect(after.get(gone)).toBeUndefined();

    // The status socket carries per-backend kernel counters (the contract `top` reads).
    const snap = await requestStatus<{ kind: string; services: Record<string, { backends: Array<{ packets: number | null }> }> }>(join(runDir, `map-image.tcp-${port}.sock`));
    expect(snap.kind).toBe('map-image');
    expect(snap.services[`tcp-${port}`]!.backends).toHaveLength(4);
    expect(snap.services[`tcp-${port}`]!.backends.reduce((n, b) => n + (b.packets ?? 0), 0)).toBeGreaterThanOrEqual(120);

    // SIGTERM: the process exits, the rules keep serving (hitless restart).
    process.kill(child.pid!, 'SIGTERM');
    expect((await child).exitCode).toBe(0);
    expect((await ns.httpSpread(`http://${ns.hostAddress}:${port}/id`, 20)).get('!error')).toBeUndefined();

    // A restart reconciles without duplicating anything; `stop` asks it to remove the mapping and exit.
    const again = execa(process.execPath, [BIN, 'map-image', String(port), image, '80', '--watch', '--dataplane', plane], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
    children.push(again);
    await new LineReader(again.stderr!).next((l) => l.includes(`watching containers`), 'restart', 20_000);
    await waitFor(async () => (await list()).mappings.find((m) => m.port === port)?.watcher === again.pid, 'restarted watcher', 15_000);
    const k = await programmed(plane, port);
    expect(k).toMatchObject({ spread: 4, hooks: 1 });
    expect(k.targets).toHaveLength(4);
    const s = await elastic(['map-image', 'stop', String(port), '--json'], { env });
    expect(s.exitCode, String(s.stderr)).toBe(0);
    expect(JSON.parse(String(s.stdout)).via).toBe('watcher');
    expect((await again).exitCode).toBe(0);
    await expectRulesetRestored();
  });

  it('kill -9 during syncs of many backends leaves the old or the new ruleset, never half; a restart reconciles without duplicates', async () => {
    const port = base + 2;
    const set = (from: number, n: number) => Array.from({ length: n }, (_, i) => `198.19.3.200:${from + i}`);
    const sets = [set(1000, 600), set(3000, 800)];
    const args = (s: string[]) => ['map-image', String(port), `mapimg-none-${tc.runId}:1`, '80', '--dataplane', plane, ...s.flatMap((b) => ['--backend', b])];
    const allowed = [[], ...sets].map((s) => [...s].sort().join(','));
    for (let i = 0; i < 8; i++) {
      const child = execa(process.execPath, [BIN, ...args(sets[i % 2]!)], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
      children.push(child);
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 350));
      // Its own tool processes (iptables-restore, the nft session) outlive it: note them first.
      const kids = String((await execa('pgrep', ['-P', String(child.pid)], { reject: false })).stdout).split('\n').filter(Boolean).map(Number);
      if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL');
      await child;
      // The orphaned transaction finishes on its own (the session's nft reads its last line, then
      // end of input): wait for those processes, and for any transaction file still in use.
      await waitFor(async () => !kids.some(pidAlive) && (await execa('pgrep', ['-f', scratchDir], { reject: false })).exitCode === 1, 'orphan transaction done', 10_000);
      const k = await programmed(plane, port);
      expect(allowed, `iteration ${i}: ${k.targets.length} targets`).toContain(k.targets.join(','));
      expect(k.spread).toBe(k.targets.length);
      expect(k.hooks).toBe(k.targets.length ? 1 : 0);
    }
    for (let i = 0; i < 2; i++) {
      const r = await elastic(args(sets[1]!), { env });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const k = await programmed(plane, port);
      expect(k.targets.join(',')).toBe(allowed[2]);
      expect(k).toMatchObject({ spread: 800, hooks: 1 });
    }
    const s = await elastic(['map-image', 'stop', String(port)], { env });
    expect(s.exitCode, String(s.stderr)).toBe(0);
    await expectRulesetRestored();
  });

  it('20 map/stop cycles leave no trace', async () => {
    const port = base + 3;
    const signal = new AbortController().signal;
    for (let i = 0; i < 20; i++) {
      const r = await mapImage({ port, protocol: 'tcp', image, containerPort: 80, dataplane: plane as 'nft', staticBackends: i % 2 ? ['198.19.3.201:80'] : [] }, signal).catch((e) => {
        throw e;
      });
      expect(r.mapping.backends.length).toBeGreaterThanOrEqual(3);
      await stopMapping(port, 'tcp');
    }
    await expectRulesetRestored();
  });
});
