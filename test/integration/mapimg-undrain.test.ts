import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, elastic } from '../support/cli.js';
import { requireDocker } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { ownedStateDir } from '../support/owned.js';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { requestStatus } from '../../src/engine/runtime/status.js';

/**
 * Issue 12 finding 9 / issue 14 item 8: the map-image status socket answers `undrain` (the drain
 * contract in docs/ARCHITECTURE.md): the backend is back in the DNAT set and leaves "draining".
 */
const stateDir = ownedStateDir('mapimg-undrain-state-');
const own = namespaceFor(stateDir);
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-undrain-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const PORT = 22030;
let child: ResultPromise | undefined;

type Snap = { services: Record<string, { backends: Array<{ endpoint: string; draining: boolean }> }> };
const socket = join(runDir, `map-image.tcp-${PORT}.sock`);
const action = (name: string, args: object) => requestStatus<{ ok: boolean; error?: string }>(socket, { op: 'action', action: name, args }, 15_000);
const draining = async () => (await requestStatus<Snap>(socket)).services[`tcp-${PORT}`]!.backends.filter((b) => b.draining).map((b) => b.endpoint);
/** The backends in the spread map (hash, the default: each fills many of the Maglev slots). */
const spread = async () => {
  const text = (await execa('nft', ['list', 'map', 'ip', own.nftTable, `spread_tcp_${PORT}`], { reject: false })).stdout;
  return [...new Set([...text.matchAll(/(198\.19\.3\.\d+) \. 80/g)].map((m) => m[1]!))].sort();
};

beforeAll(async () => {
  await requireDocker();
});

afterAll(async () => {
  if (child?.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  await elastic(['map-image', 'stop', '--all'], { env });
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

describe('map-image status socket: drain and undrain', () => {
  it('undrain puts a drained backend back; an unknown one is an error', async () => {
    child = execa(process.execPath, [BIN, 'map-image', String(PORT), `mapimg-none-${process.pid}:1`, '80', '--watch', '--dataplane', 'nft', '--backend', '198.19.3.231:80', '--backend', '198.19.3.232:80'], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
    const err = new LineReader(child.stderr!);
    onTestFailed(() => console.error(err.lines.join('\n')));
    await err.next((l) => l.includes(`applied tcp-${PORT}: 2 backend(s)`), 'first apply', 20_000);

    expect((await action('drain', { address: '198.19.3.231', port: 80, timeoutMs: 100 })).ok).toBe(true);
    expect(await draining()).toEqual(['198.19.3.231:80']);
    expect(await spread()).toEqual(['198.19.3.232']);

    const r = await action('undrain', { address: '198.19.3.231', port: 80 });
    expect(r, JSON.stringify(r)).toMatchObject({ ok: true, undrained: true });
    expect(await draining()).toEqual([]);
    expect(await spread()).toEqual(['198.19.3.231', '198.19.3.232']);

    const bad = await action('undrain', { address: '198.19.3.239', port: 80 });
    expect(bad).toMatchObject({ ok: false, error: `198.19.3.239:80 is not a backend of tcp-${PORT}` });
  });
});
