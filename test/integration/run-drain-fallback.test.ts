import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPaths } from '../../src/engine/render.js';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { ownedStateDir } from '../support/owned.js';
import { stopRunDaemon } from '../support/run-daemon.js';
import { answering, LocalBackends } from '../support/render-backends.js';

/**
 * Issue 14 follow-up: `elastic run`'s drain of a rendered backend is render's drain (one function,
 * src/engine/frontends/drain.ts), fallback included: when HAProxy's runtime API fails (here its
 * stats socket answers `show info` but refuses every change, as a busy or reloading HAProxy can),
 * the backend still leaves through a config pass (a reload through the master socket), as
 * `render --watch` does. (Since drains are passes, the pass falls back from the runtime API.)
 * Before, run answered the drain with the runtime error and kept the backend in rotation. Real
 * daemon, HAProxy and busybox backends. Ports 25720-25721 (backends), 25730 (HAProxy).
 */
const NAME = 'rundrainfb';
const stateDir = ownedStateDir('rundrainfb-state-');
const runDir = mkdtempSync(join(tmpdir(), 'rundrainfb-run-'));
const dir = mkdtempSync(join(tmpdir(), 'rundrainfb-cfg-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const file = join(dir, 'elastic.yaml');
const FRONT = 25730;
const backends = new LocalBackends();
let child: ChildProcess | null = null;
let refusing: Server | null = null;

beforeAll(async () => {
  await backends.start([25720, 25721]);
  writeFileSync(
    file,
    `version: 1
name: ${NAME}
sources:
  fixed: { static: { backends: ["127.0.0.1:25720", "127.0.0.1:25721"] } }
services:
  - name: web
    sources: [fixed]
    guardrails: { min_backends: 1, max_change: 100 }
    haproxy: { port: ${FRONT}, mode: http }
sync: { min_interval_ms: 50 }
`,
  );
});

afterAll(async () => {
  refusing?.close();
  await backends.stop();
  await stopRunDaemon(child, NAME, env, [stateDir, runDir, dir]);
}, 60_000);


describe('elastic run: drain falls back to a config pass', () => {
  it('HAProxy runtime API refusing: the drained backend still leaves rotation', async () => {
    child = spawn(process.execPath, [BIN, 'run', '-c', file, '--log-json'], { env: { ...process.env, ...env, CI: 'true' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const err = new LineReader(child.stderr!);
    await waitFor(async () => (await answering(FRONT, 8)).size === 2 && !(await answering(FRONT, 4)).has('ERR'), 'both backends served', 30_000, 200).catch((e: Error) => {
      throw new Error(`${e.message}\n${err.lines.slice(-20).join('\n')}`);
    });
    // The runtime API refuses changes from now on: in place of HAProxy's stats socket, one that
    // says it is HAProxy and answers everything else as HAProxy does a command it cannot run.
    const { statsSocket } = defaultPaths(`run-${NAME}`, 'haproxy', env);
    await rename(statsSocket, `${statsSocket}.away`);
    refusing = createServer((c) => c.once('data', (d) => c.end(d.toString().startsWith('show info') ? 'Name: HAProxy\n' : 'Unknown command.\n')));
    await new Promise<void>((r) => refusing!.listen(statsSocket, r));

    const r = await requestStatus<Record<string, unknown>>(join(runDir, `run.${NAME}.sock`), { op: 'action', action: 'drain', args: { address: '127.0.0.1', port: 25721, timeoutMs: 3000 } }, 30_000);
    expect(r, err.lines.slice(-20).join('\n')).toMatchObject({ ok: true, drained: true });
    expect(await answering(FRONT, 12)).toEqual(new Set(['b25720']));
    // The drain is applied by passes (drain.ts): the weight-0 pass fell back from the runtime API to
    // a reload, and the sessions could not be read, so the pass that takes it out did not wait.
    expect(err.lines.join('\n')).toMatch(/runtime API change failed; reloading with the validated file instead/);
    expect(err.lines.join('\n')).toMatch(/waiting for the sessions of .* failed; taking it out without waiting/);
  }, 90_000);
});
