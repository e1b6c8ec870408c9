import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { elastic } from '../support/cli.js';
import { elasticTraces } from '../support/ruleset.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * Issue 13 items 7 and 8: numbers outside their documented range and addresses that are not
 * backends are usage errors (exit 2, one line), found before anything is programmed or probed.
 */
const stateDir = ownedStateDir('mapimg-input-state-');
const own = namespaceFor(stateDir);
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-input-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };

afterAll(async () => {
  await elastic(['map-image', 'stop', '--all'], { env });
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

async function refused(args: string[], pattern: RegExp): Promise<void> {
  const t0 = Date.now();
  const r = await elastic(args, { env, timeout: 30_000 });
  expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2);
  expect(String(r.stderr)).toMatch(pattern);
  expect(String(r.stderr).trim().split('\n')).toHaveLength(1);
  expect(Date.now() - t0, `${args.join(' ')} answered at once`).toBeLessThan(15_000);
}

describe('refused at once, nothing programmed', () => {
  it.each(['0.0.0.0:80', '224.0.0.1:80', '255.255.255.255:80', '127.0.0.1:80', '240.0.0.1:80'])('map-image --backend %s', async (backend) => {
    await refused(['map-image', '22020', 'elastic-test/web:1', '80', '--backend', backend], new RegExp(`backend ${backend.replace(/\./g, '\\.')} is an? (unspecified|loopback|multicast|reserved)`));
    expect(await elasticTraces(own)).toEqual([]);
  });

  it('an invalid image reference is said at once, not after --wait', async () => {
    await refused(['map-image', '22021', 'bad image!!', '80'], /invalid image reference "bad image!!"/);
    await refused(['map-image', '22021', 'bad image!!', '80', '--watch'], /invalid image reference/);
    await refused(['discover', '--image', 'bad image!!', '--port', '80'], /invalid --image "bad image!!"/);
  });

  it.each([
    ['--check-interval', '99999999999999999999999'],
    ['--check-interval', '3600001'],
    ['--check-timeout', '60001'],
    ['--rise', '101'],
    ['--fall', '0'],
  ])('%s %s is out of its documented range (discover and map-image)', async (flag, value) => {
    await refused(['discover', '--backend', '198.19.3.230:80', '--check', 'tcp', flag, value], new RegExp(flag));
    await refused(['map-image', '22022', 'elastic-test/web:1', '80', '--backend', '198.19.3.230:80', '--check', 'tcp', flag, value], new RegExp(flag));
  });

  it('--wait and --poll-interval too', async () => {
    await refused(['map-image', '22023', 'elastic-test/web:1', '80', '--wait', '99999999999'], /--wait/);
    await refused(['discover', '--tag', 'a=b', '--port', '80', '--poll-interval', '99999999999'], /--poll-interval/);
  });
});
