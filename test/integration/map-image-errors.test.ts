import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { BIN, elastic } from '../support/cli.js';
import { requireDocker } from '../support/docker.js';
import { elasticTraces, snapshotRuleset, type RulesetSnapshot } from '../support/ruleset.js';
import { nftSvc } from '../../src/engine/dataplane/nft.js';
import { stopAllMappings } from '../../src/engine/map-image.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * Bad input and refusals: each ends with a non-zero exit and a clear message, and nothing
 * half-applied (the ruleset is what it was, or the previous mapping is intact).
 */
const stateDir = ownedStateDir('mapimg-err-state-');
// This run's own kernel objects: tests never see other state directories' (namespace.ts).
const own = namespaceFor(stateDir);
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-err-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const none = `mapimg-none-${process.pid}:1`;
let before: RulesetSnapshot;

beforeAll(async () => {
  await requireDocker();
  process.env.ELASTIC_STATE_DIR = stateDir;
  process.env.ELASTIC_RUN_DIR = runDir;
  before = await snapshotRuleset(own);
});

// A failed test must not leave a mapping for the next one: remove every mapping and elastic object.
afterEach(async () => {
  await stopAllMappings().catch(() => {});
});

afterAll(async () => {
  await stopAllMappings().catch(() => {});
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

async function expectUnchanged(): Promise<void> {
  expect(await elasticTraces(own)).toEqual([]);
  expect(await snapshotRuleset(own)).toEqual(before);
}

describe('map-image bad input', () => {
  it.each([
    [['70000', none, '80'], /invalid PORT "70000"/],
    [['0', none, '80'], /invalid PORT "0"/],
    [['18340', none, '99999'], /invalid CONTAINER_PORT/],
    [['18340', none, '80', '--address', '127.0.0.1'], /loopback addresses cannot be mapped/],
    [['18340', none, '80', '--backend', '198.19.3.210:80; flush ruleset'], /invalid backend/],
  ])('%j is a usage error (exit 2), nothing changed', async (args, message) => {
    const r = await elastic(['map-image', ...args], { env });
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(message);
    await expectUnchanged();
  });

  it('a port already mapped to another image is refused; the first mapping stays', async () => {
    const first = await elastic(['map-image', '18340', none, '80', '--backend', '198.19.3.210:80'], { env });
    expect(first.exitCode, String(first.stderr)).toBe(0);
    const mapped = await snapshotRuleset(own);
    const second = await elastic(['map-image', '18340', `${none}-other`, '80', '--backend', '198.19.3.211:80'], { env });
    expect(second.exitCode).toBe(2);
    expect(String(second.stderr)).toMatch(/port 18340\/tcp is already mapped .*try: stop it first: elastic map-image stop 18340/);
    expect(await snapshotRuleset(own)).toEqual(mapped);
    expect((await elastic(['map-image', 'stop', '18340'], { env })).exitCode).toBe(0);
    await expectUnchanged();
  });

  it('an image with no container: waits, says so, then gives up with nothing changed (exit 3)', async () => {
    const r = await elastic(['map-image', '18341', none, '80', '--wait', '1'], { env });
    expect(r.exitCode).toBe(3);
    expect(String(r.stderr)).toMatch(/no running container of .* yet: waiting up to 1s/);
    expect(String(r.stderr)).toMatch(/appeared in 1s; nothing was changed/);
    expect(JSON.parse(String((await elastic(['map-image', 'list', '--json'], { env })).stdout)).mappings).toEqual([]);
    await expectUnchanged();
  });

  it('not root and without CAP_NET_ADMIN: refused before anything (exit 4)', async () => {
    for (const args of [['map-image', '18342', none, '80'], ['map-image', 'stop', '18342']]) {
      const r = await execa('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', process.execPath, BIN, ...args], {
        reject: false,
        stdin: 'ignore',
        env: { CI: 'true', ELASTIC_STATE_DIR: '/tmp/mapimg-nobody-state', ELASTIC_RUN_DIR: '/tmp/mapimg-nobody-run', HOME: '/tmp' },
      });
      expect(r.exitCode, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/needs root or CAP_NET_ADMIN/);
    }
    await expectUnchanged();
  });

  it.each([
    ['nft', /nft was not found in PATH.*install the nftables package/],
    ['iptables', /iptables-save was not found in PATH/],
    ['auto', /neither nft nor iptables works on this host/],
  ])('--dataplane %s without the tools in PATH: exit 3 with what to install', async (plane, message) => {
    const r = await elastic(['map-image', '18342', none, '80', '--backend', '198.19.3.210:80', '--dataplane', plane], { env: { ...env, PATH: '/usr/bin:/bin' } });
    expect(r.exitCode).toBe(3);
    expect(String(r.stderr)).toMatch(message);
    await expectUnchanged();
  });
});

describe('the kernel refusing a transaction', () => {
  it('nft: reports the failing line, keeps the previous rules and state', async () => {
    expect((await elastic(['map-image', '18343', none, '80', '--backend', '198.19.3.211:80', '--dataplane', 'nft'], { env })).exitCode).toBe(0);
    const good = await snapshotRuleset(own);
    // A chain with the name the next mapping's spread chain will get, but a filter base chain: DNAT is refused there.
    const chain = nftSvc('tcp-18345');
    await execa('nft', ['add', 'chain', 'ip', own.nftTable, chain, '{ type filter hook forward priority 0; policy accept; }']);
    try {
      const r = await elastic(['map-image', '18345', none, '80', '--backend', '198.19.3.212:80', '--dataplane', 'nft'], { env });
      expect(r.exitCode).toBe(6);
      // (the kernel refuses the first rule that meets the filter-type chain: the jump to it, or its DNAT)
      expect(String(r.stderr)).toMatch(new RegExp(`kernel refused the nft transaction at line \\d+ \\(add rule ip ${own.nftTable} .*${chain}.*\\): .*Operation not supported`));
      expect(String(r.stderr)).toMatch(/previous rules are still in force/);
      // The rollback reconciled to the previous state: the stray chain of ours is gone, the rest is as it was.
      expect(await snapshotRuleset(own)).toEqual(good);
      const listed = JSON.parse(String((await elastic(['map-image', 'list', '--json'], { env })).stdout));
      expect(listed.mappings.map((m: { id: string }) => m.id)).toEqual(['tcp-18343']);
      expect(listed.mappings[0].backends.map((b: { endpoint: string }) => b.endpoint)).toEqual(['198.19.3.211:80']);
    } finally {
      await execa('nft', ['delete', 'chain', 'ip', own.nftTable, chain], { reject: false });
    }
    expect((await elastic(['map-image', 'stop', '18343'], { env })).exitCode).toBe(0);
    await expectUnchanged();
  });

  it('iptables: a stray chain of ours still referenced elsewhere cannot be deleted: refused, old rules kept', async () => {
    expect((await elastic(['map-image', '18344', none, '80', '--backend', '198.19.3.211:80', '--dataplane', 'iptables'], { env })).exitCode).toBe(0);
    const stray = `${own.chainPrefix}BE-mapimgstra`;
    // The reference comes from a regular chain this test makes and removes (never a built-in
    // chain such as INPUT: adding a rule there creates its base chain, which outlives the rule
    // and changes the host for every later run).
    const referrer = `MAPIMG-TEST-${process.pid}`;
    await execa('iptables', ['-t', 'nat', '-N', stray]);
    await execa('iptables', ['-t', 'nat', '-N', referrer]);
    await execa('iptables', ['-t', 'nat', '-A', referrer, '-j', stray]);
    try {
      const good = await snapshotRuleset(own);
      const r = await elastic(['map-image', '18344', none, '80', '--backend', '198.19.3.211:80', '--backend', '198.19.3.212:80', '--dataplane', 'iptables'], { env });
      expect(r.exitCode).toBe(6);
      expect(String(r.stderr)).toMatch(new RegExp(`kernel refused the iptables-restore transaction at line \\d+ \\(-X ${stray}\\)`));
      expect(await snapshotRuleset(own)).toEqual(good);
      const listed = JSON.parse(String((await elastic(['map-image', 'list', '--json'], { env })).stdout));
      expect(listed.mappings[0].backends.map((b: { endpoint: string }) => b.endpoint)).toEqual(['198.19.3.211:80']);
    } finally {
      await execa('iptables', ['-t', 'nat', '-F', referrer], { reject: false });
      await execa('iptables', ['-t', 'nat', '-X', referrer], { reject: false });
      await execa('iptables', ['-t', 'nat', '-X', stray], { reject: false });
    }
    expect((await elastic(['map-image', 'stop', '18344'], { env })).exitCode).toBe(0);
    await expectUnchanged();
  });
});

describe('two state directories on one host', () => {
  it('each owns its own kernel objects: a sync or `stop --all` in one never touches the other', async () => {
    const otherState = ownedStateDir('mapimg-err-other-state-');
    const otherRun = mkdtempSync(join(tmpdir(), 'mapimg-err-other-run-'));
    const otherEnv = { ELASTIC_STATE_DIR: otherState, ELASTIC_RUN_DIR: otherRun };
    const other = namespaceFor(otherState);
    expect(other.nftTable).not.toBe(own.nftTable);
    try {
      for (const plane of ['nft', 'iptables']) {
        expect((await elastic(['map-image', '18346', none, '80', '--backend', '198.19.3.213:80', '--dataplane', plane], { env })).exitCode).toBe(0);
        const mine = await snapshotRuleset(own);
        // The other instance programs its own mapping (a full sync: it reads the kernel), then removes everything it owns.
        const r = await elastic(['map-image', '18347', none, '80', '--backend', '198.19.3.214:80', '--dataplane', plane], { env: otherEnv });
        expect(r.exitCode, String(r.stderr)).toBe(0);
        expect((await elasticTraces(other)).length).toBeGreaterThan(0);
        expect((await elastic(['map-image', 'stop', '--all'], { env: otherEnv })).exitCode).toBe(0);
        expect(await elasticTraces(other)).toEqual([]);
        expect(await snapshotRuleset(own)).toEqual(mine);
        const listed = JSON.parse(String((await elastic(['map-image', 'list', '--json'], { env })).stdout));
        expect(listed.mappings.map((m: { id: string }) => m.id)).toEqual(['tcp-18346']);
        expect((await elastic(['map-image', 'stop', '18346'], { env })).exitCode).toBe(0);
      }
      await expectUnchanged();
    } finally {
      await elastic(['map-image', 'stop', '--all'], { env: otherEnv }).catch(() => {});
      rmSync(otherState, { recursive: true, force: true });
      rmSync(otherRun, { recursive: true, force: true });
    }
  });
});
