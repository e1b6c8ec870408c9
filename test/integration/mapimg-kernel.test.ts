import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { elastic } from '../support/cli.js';
import { requireDocker } from '../support/docker.js';
import { elasticTraces, snapshotRuleset, type RulesetSnapshot } from '../support/ruleset.js';
import { ownedStateDir } from '../support/owned.js';
import type { ListResult } from '../../src/engine/map-image.js';

/**
 * Issue 13 items 11 and 12: the kernel is the truth for what is programmed. A lost state file
 * does not hide live rules from `list` and `stop`; a state file of the wrong shape is refused
 * like a corrupt one; temp files of killed writers are removed; another state directory
 * mapping the same port is refused and shown.
 */
const stateDir = ownedStateDir('mapimg-kernel-state-');
const own = namespaceFor(stateDir);
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-kernel-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const none = `mapimg-none-${process.pid}:1`;
const stateFile = join(stateDir, 'mappings.json');
let before: RulesetSnapshot;

async function list(e = env): Promise<ListResult> {
  const r = await elastic(['map-image', 'list', '--json'], { env: e });
  expect(r.exitCode, String(r.stderr)).toBe(0);
  return JSON.parse(String(r.stdout)) as ListResult;
}

async function map(port: number, plane: string, backend: string, e = env) {
  return elastic(['map-image', String(port), none, '80', '--backend', backend, '--dataplane', plane], { env: e });
}

beforeAll(async () => {
  await requireDocker();
  before = await snapshotRuleset(own);
});

afterAll(async () => {
  rmSync(stateFile, { force: true });
  await elastic(['map-image', 'stop', '--all'], { env });
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

describe('the kernel is the truth for what is programmed', () => {
  it('with the state file moved aside, list shows the live mappings and stop PORT removes exactly one', async () => {
    expect((await map(22010, 'nft', '198.19.3.221:80')).exitCode).toBe(0);
    expect((await map(22011, 'iptables', '198.19.3.222:80')).exitCode).toBe(0);
    renameSync(stateFile, `${stateFile}.aside`);
    try {
      const l = await list();
      expect(l.mappings.map((m) => [m.id, m.lost, m.dataplane, m.backends.map((b) => b.endpoint)])).toEqual([
        ['tcp-22010', true, 'nft', ['198.19.3.221:80']],
        ['tcp-22011', true, 'iptables', ['198.19.3.222:80']],
      ]);
      expect((await elastic(['map-image', 'list'], { env })).stdout).toContain('not in the state file');

      const s = await elastic(['map-image', 'stop', '22010', '--json'], { env });
      expect(s.exitCode, String(s.stderr)).toBe(0);
      expect(JSON.parse(String(s.stdout))).toMatchObject({ stopped: 'tcp-22010', backends: 1 });
      expect((await execa('nft', ['list', 'table', 'ip', own.nftTable], { reject: false })).stdout).not.toContain('22010');
      // The other one is untouched: still DNATing, still listed.
      expect((await execa('iptables-save', ['-t', 'nat'])).stdout).toContain('elastic:tcp-22011 198.19.3.222:80');
      expect((await list()).mappings.map((m) => m.id)).toEqual(['tcp-22011']);
      // Declaring the port again takes the adopted mapping over (no "already mapped").
      const again = await map(22011, 'iptables', '198.19.3.223:80');
      expect(again.exitCode, String(again.stderr)).toBe(0);
      expect((await list()).mappings.map((m) => [m.id, m.lost, m.image])).toEqual([['tcp-22011', false, none]]);
      expect((await elastic(['map-image', 'stop', '22011'], { env })).exitCode).toBe(0);
      expect(await elasticTraces(own)).toEqual([]);
      expect(await snapshotRuleset(own)).toEqual(before);
    } finally {
      rmSync(`${stateFile}.aside`, { force: true });
    }
  });

  it('a state file of valid JSON but the wrong shape is refused like a corrupt one', async () => {
    for (const bad of ['{"v":1,"generation":1,"mappings":[{}]}', '{"v":1,"generation":1,"mappings":[{"spec":{"id":"tcp-1"}}]}', '[]', '{"v":2}']) {
      writeFileSync(stateFile, bad);
      for (const args of [['list'], ['stop', '22012'], ['22012', none, '80', '--backend', '198.19.3.224:80']]) {
        const r = await elastic(['map-image', ...args], { env });
        expect(r.exitCode, `${bad} ${args.join(' ')}: ${r.stderr}`).toBe(5);
        expect(String(r.stderr)).toMatch(/is not a mappings state/);
        expect(String(r.stderr)).not.toMatch(/unexpected error/);
        expect(String(r.stderr).trim().split('\n')).toHaveLength(1);
      }
    }
    rmSync(stateFile, { force: true });
  });

  it('temp files of a writer killed with -9 are removed at start', async () => {
    const dead = execa('true');
    await dead;
    const stale = join(stateDir, `.mappings.json.${dead.pid}.1764000000000.tmp`);
    const live = join(stateDir, `.mappings.json.${process.pid}.1764000000000.tmp`);
    writeFileSync(stale, '');
    writeFileSync(live, '');
    try {
      expect((await map(22013, 'nft', '198.19.3.225:80')).exitCode).toBe(0);
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(live)).toBe(true); // its writer (this process) still runs
    } finally {
      rmSync(live, { force: true });
      await elastic(['map-image', 'stop', '22013'], { env });
    }
  });

  it('a port another state directory maps is refused (exit 6, one line), and a conflict that exists is shown in list', async () => {
    const otherState = ownedStateDir('mapimg-kernel-other-');
    const otherEnv = { ELASTIC_STATE_DIR: otherState, ELASTIC_RUN_DIR: runDir };
    const other = namespaceFor(otherState);
    try {
      expect((await map(22014, 'nft', '198.19.3.226:80')).exitCode).toBe(0);
      for (const plane of ['nft', 'iptables']) {
        const r = await map(22014, plane, '198.19.3.227:80', otherEnv);
        expect(r.exitCode, String(r.stderr)).toBe(6);
        expect(String(r.stderr)).toMatch(new RegExp(`port 22014/tcp is already mapped by another elastic state directory \\(kernel namespace ${own.nftTable}`));
        expect(String(r.stderr).trim().split('\n')).toHaveLength(1);
        expect(await elasticTraces(other)).toEqual([]);
      }
      const w = await elastic(['map-image', '22014', none, '80', '--backend', '198.19.3.227:80', '--watch'], { env: otherEnv, timeout: 30_000 });
      expect(w.exitCode, String(w.stderr)).toBe(6);

      // A conflict made behind elastic's back (an older version, a hand-edited state): the
      // other directory's state lists 22014 and a sync of another port programs it.
      const mine = JSON.parse(readFileSync(stateFile, 'utf8'));
      writeFileSync(join(otherState, 'mappings.json'), JSON.stringify({ ...mine, mappings: mine.mappings.map((m: { spec: object }) => ({ ...m, backends: [{ id: 'x', name: 'x', address: '198.19.3.227', port: 80 }] })) }));
      expect((await map(22015, 'nft', '198.19.3.228:80', otherEnv)).exitCode).toBe(0);
      const l = await list();
      expect(l.conflicts).toEqual([{ namespace: other.id, id: 'tcp-22014', dataplane: 'nft', targets: ['198.19.3.227:80'] }]);
      expect((await elastic(['map-image', 'list'], { env })).stdout).toContain(`conflict: tcp-22014 is also mapped by another state directory (kernel namespace ${other.nftTable}`);
    } finally {
      await elastic(['map-image', 'stop', '--all'], { env: otherEnv });
      await elastic(['map-image', 'stop', '22014'], { env });
      rmSync(otherState, { recursive: true, force: true });
    }
  });
});
