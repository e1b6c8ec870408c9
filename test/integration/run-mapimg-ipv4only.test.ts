import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { BIN } from '../support/cli.js';
import { ownedStateDir } from '../support/owned.js';
import { snapshotRuleset, type RulesetSnapshot } from '../support/ruleset.js';

/**
 * elastic.yaml can list an IPv6 backend in a static source for a `map_image` service on the
 * iptables data plane, which maps IPv4 only. The backend was left out with no word; now the
 * daemon says which backend is not mapped and what to set (once per backend). Real daemon
 * (--once), real iptables, in this test's own elastic namespace; nothing is left behind.
 * Addresses are in 198.18.97.0/24 and 2001:2:0:97::/64 (nothing is sent to them). Port 27980.
 */
const stateDir = ownedStateDir('run-v4only-state-');
const runDir = mkdtempSync(join(tmpdir(), 'run-v4only-run-'));
const dir = mkdtempSync(join(tmpdir(), 'run-v4only-cfg-'));
const env = { ...process.env, ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir, CI: 'true' };
const own = namespaceFor(stateDir);
const file = join(dir, 'elastic.yaml');
let before: RulesetSnapshot;

beforeAll(async () => {
  before = await snapshotRuleset(own);
  writeFileSync(
    file,
    `version: 1
name: v4only
sources:
  fixed: { static: { backends: ["198.18.97.5:80", "[2001:2:0:97::5]:80"] } }
services:
  - name: web
    sources: [fixed]
    map_image: { port: 27980, dataplane: iptables }
`,
  );
});

afterAll(async () => {
  await execa(process.execPath, [BIN, 'map-image', 'stop', '--all'], { env, reject: false });
  for (const p of [stateDir, runDir, dir]) rmSync(p, { recursive: true, force: true });
});

describe('elastic run: an IPv6 backend on the iptables data plane', () => {
  it('is not mapped, and the daemon says so with what to do', async () => {
    const r = await execa(process.execPath, [BIN, 'run', '-c', file, '--once', '--log-json'], { env, reject: false, timeout: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('is not mapped'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('[2001:2:0:97::5]:80 of web is not mapped: the iptables data plane maps IPv4 only');
    expect(warnings[0]).toContain('map_image.dataplane: nft');
    const nat = (await execa('iptables-save', ['-t', 'nat'])).stdout;
    expect(nat).toContain('198.18.97.5:80');
    await execa(process.execPath, [BIN, 'map-image', 'stop', '--all'], { env });
    expect(await snapshotRuleset(own)).toEqual(before);
  }, 90_000);
});
