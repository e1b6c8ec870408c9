import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { ownedStateDir } from '../support/owned.js';
import { stopRunDaemon } from '../support/run-daemon.js';
import { answering, LocalBackends } from '../support/render-backends.js';

/**
 * A drain outlives a reload that changes the set of services. `elastic run` builds a new renderer
 * when its services change (SIGHUP with a service added); the drained set lived in the old
 * renderer, so the drained backend came back into rotation with the new service. The drains now
 * belong to the applier and pass from one renderer to the next (frontends/renderer.ts Drains).
 * Real daemon, HAProxy and local backends. Ports 27950-27952 (backends), 27955-27956 (HAProxy).
 */
const NAME = 'rundrainrl';
const stateDir = ownedStateDir('rundrainrl-state-');
const runDir = mkdtempSync(join(tmpdir(), 'rundrainrl-run-'));
const dir = mkdtempSync(join(tmpdir(), 'rundrainrl-cfg-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const file = join(dir, 'elastic.yaml');
const WEB = 27955;
const API = 27956;
const backends = new LocalBackends();
let child: ChildProcess | null = null;

const config = (withApi: boolean) => `version: 1
name: ${NAME}
sources:
  fixed: { static: { backends: ["127.0.0.1:27950", "127.0.0.1:27951"] } }
${withApi ? '  other: { static: { backends: ["127.0.0.1:27952"] } }\n' : ''}services:
  - name: web
    sources: [fixed]
    guardrails: { min_backends: 1, max_change: 100 }
    haproxy: { port: ${WEB}, mode: http }
${withApi ? `  - name: api\n    sources: [other]\n    haproxy: { port: ${API}, mode: http }\n` : ''}sync: { min_interval_ms: 50 }
`;

beforeAll(async () => {
  await backends.start([27950, 27951, 27952]);
  writeFileSync(file, config(false));
});

afterAll(async () => {
  await backends.stop();
  await stopRunDaemon(child, NAME, env, [stateDir, runDir, dir]);
}, 60_000);


describe('elastic run: a drain outlives a reload that adds a service', () => {
  it('the drained backend stays out of rotation after SIGHUP rebuilds the renderer', async () => {
    child = spawn(process.execPath, [BIN, 'run', '-c', file, '--log-json'], { env: { ...process.env, ...env, CI: 'true' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const err = new LineReader(child.stderr!);
    const tail = () => err.lines.slice(-20).join('\n');
    await waitFor(async () => (await answering(WEB, 8)).size === 2, 'both backends served', 30_000, 200).catch((e: Error) => {
      throw new Error(`${e.message}\n${tail()}`);
    });
    const r = await requestStatus<Record<string, unknown>>(join(runDir, `run.${NAME}.sock`), { op: 'action', action: 'drain', args: { address: '127.0.0.1', port: 27951, timeoutMs: 3000 } }, 30_000);
    expect(r, tail()).toMatchObject({ ok: true, drained: true });
    expect(await answering(WEB, 12)).toEqual(new Set(['b27950']));

    writeFileSync(file, config(true));
    process.kill(child.pid!, 'SIGHUP');
    await waitFor(async () => (await answering(API, 2)).has('b27952'), 'the added service answers', 30_000, 200).catch((e: Error) => {
      throw new Error(`${e.message}\n${tail()}`);
    });
    // Some passes later, still out.
    await new Promise((r) => setTimeout(r, 500));
    expect(await answering(WEB, 16), tail()).toEqual(new Set(['b27950']));
  }, 90_000);
});
