import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../support/cli.js';
import { tearDownMapimg } from '../support/flows.js';
import { docker, execText, hairpinMode, requireDocker, TEST_IMAGE, TestContainers, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * Issue 12 finding 9: a backend reaching its own mapping through the host (its bridge's address)
 * never landed on itself, and 1 in N such connections stalled 1 s: br_netfilter bridged the
 * DNATed SYN back out of the port it came in on, which a bridge drops without hairpin mode
 * (hairpin.ts). The containers' bridge ports are Docker's and go with the containers.
 */
const tc = new TestContainers();
const image = `mapimg-hairpin-${tc.runId}:1`;
const stateDir = ownedStateDir('mapimg-hairpin-state-');
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-hairpin-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const PORT = 22040;
let child: ResultPromise | undefined;

beforeAll(async () => {
  await requireDocker();
  await docker.getImage(TEST_IMAGE).tag({ repo: `mapimg-hairpin-${tc.runId}`, tag: '1' });
});

afterAll(async () => {
  if (child?.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  await tearDownMapimg({ env, tc, image, namespaces: [], dirs: [stateDir, runDir] });
});

describe('hairpin: a backend reaching its own mapping', () => {
  it('lands on itself too, and no connection stalls', async () => {
    const cs = [await tc.run({ image }), await tc.run({ image }), await tc.run({ image })];
    const self = cs[0]!;
    const info = await self.inspect();
    const gateway = info.NetworkSettings.Networks.bridge!.Gateway; // the host, on the container's bridge
    child = execa(process.execPath, [BIN, 'map-image', String(PORT), image, '80', '--watch', '--dataplane', 'nft'], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
    const err = new LineReader(child.stderr!);
    onTestFailed(() => console.error(err.lines.join('\n')));
    await err.next((l) => l.includes(`applied tcp-${PORT}: 3 backend(s)`), 'first apply', 20_000);
    // Hairpin mode is set right after the apply (a fixed 300 ms wait raced it on a loaded machine).
    await waitFor(async () => (await hairpinMode(self)) === '1', 'hairpin mode on the bridge port', 10_000);

    // 24 connections from inside the container, each timed there (a 1 s SYN retransmit shows).
    const script = `for i in $(seq 1 24); do s=$(cat /proc/uptime); printf 'GET /id HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${gateway} ${PORT} | tail -1; e=$(cat /proc/uptime); echo "t $s $e"; done`;
    const text = await execText(self, script);
    const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
    const hosts = lines.filter((l) => !l.startsWith('t ')).map((l) => l.slice(-12));
    const slow = lines.filter((l) => l.startsWith('t ')).map((l) => l.split(' ')).map((p) => Number(p[3]) - Number(p[1])).filter((d) => d >= 0.9);
    expect(hosts, text).toHaveLength(24);
    expect(hosts.filter((h) => h === info.Config.Hostname).length, text).toBeGreaterThan(0);
    expect(slow, text).toEqual([]);
  }, 60_000);
});
