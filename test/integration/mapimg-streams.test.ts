import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, elastic } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { PrivateDockerd } from '../support/private-dockerd.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * Issue 13 item 10, issue 12 finding 9: long-lived hint streams. A quiet Docker event stream was
 * torn down by the client's 15 s request timeout (a warning and a full re-list every 15 s); a
 * static-only watch "ended" its stream and reconnected forever; every hint of a composite source
 * (map-image --watch --backend) left an abort listener behind.
 */
const tc = new TestContainers();
const image = `mapimg-quiet-${tc.runId}:1`;
const stateDir = ownedStateDir('mapimg-streams-state-');
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-streams-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const children: ResultPromise[] = [];
// The shared dockerd is never quiet (other tests churn containers): a private one is.
const quietDockerd = new PrivateDockerd();

function spawn(args: string[]): { proc: ResultPromise; err: LineReader } {
  const proc = execa(process.execPath, [BIN, ...args], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
  children.push(proc);
  new LineReader(proc.stdout!);
  return { proc, err: new LineReader(proc.stderr!) };
}

beforeAll(async () => {
  await requireDocker();
  await docker.getImage(TEST_IMAGE).tag({ repo: `mapimg-quiet-${tc.runId}`, tag: '1' });
  await quietDockerd.start();
}, 60_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  await elastic(['map-image', 'stop', '--all'], { env });
  await tc.cleanup();
  await docker.getImage(image).remove().catch(() => {});
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
  await quietDockerd.destroy();
}, 60_000);

describe('long-lived hint streams', () => {
  it('a quiet Docker stream, a static-only watch and a composite with many hints stay up through 20 s of quiet without reconnects or leaks', async () => {
    const quiet = spawn(['discover', '--watch', '--json', '--image', image, '--port', '80', '--docker-host', quietDockerd.host]);
    const staticOnly = spawn(['discover', '--watch', '--json', '--backend', '198.19.3.250:80']);
    const composite = spawn(['map-image', '22001', image, '80', '--watch', '--dataplane', 'nft', '--backend', '198.19.3.250:80']);
    const all = { quiet, staticOnly, composite };
    onTestFailed(() => {
      for (const [k, v] of Object.entries(all)) console.error(`${k} stderr:\n${v.err.lines.join('\n')}`);
    });
    await composite.err.next((l) => l.includes('applied tcp-22001'), 'first apply', 20_000);
    // Hints for the composite (its Docker filter is on event kinds, not images): containers of
    // the test image that the quiet watch does not select. ~20 events, well past 10 listeners.
    for (let i = 0; i < 5; i++) await (await tc.run()).stop({ t: 0 });
    // Then 20 s of quiet: past the 15 s idle timeout that used to end the Docker streams.
    await new Promise((r) => setTimeout(r, 20_000));
    for (const [name, w] of Object.entries(all)) {
      expect(w.proc.exitCode, name).toBeNull();
      expect(w.err.lines.filter((l) => /event stream|unreachable|ECONNRESET|MaxListeners|memory leak/i.test(l)), name).toEqual([]);
    }
  }, 90_000);
});
