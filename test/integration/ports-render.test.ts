import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';
import { ownedStateDir } from '../support/owned.js';
import { requestLoop, startForeignHaproxy, type ForeignHaproxy } from '../support/ports.js';
import { LocalBackends, httpGet } from '../support/render-backends.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';

/**
 * Issue 13 item 1 for `render`: a bind that another HAProxy (SO_REUSEPORT: the bind would
 * "work" and share its connections) or a plain listener serves is refused with one line, exit 3,
 * before anything is written or started; a bind our own HAProxy serves is not.
 */
const P = { backend: 21520, foreignBackend: 21521, foreign: 21522, held: 21523, free: 21524, multi: 21525 };
const stateDir = ownedStateDir('ports-render-state-');
const runDir = mkdtempSync(join(tmpdir(), 'ports-render-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const backends = new LocalBackends();
let held: Server;
let foreign: ForeignHaproxy;

const render = (bind: number, instance: string, extra: string[] = []) =>
  elastic(['render', '--service', 'web', '--backend', `127.0.0.1:${P.backend}`, '--bind', `127.0.0.1:${bind}`, '--instance-name', instance, '--start', ...extra], { env });

beforeAll(async () => {
  await backends.start([P.backend, P.foreignBackend]);
  held = createServer((s) => s.end('held\n'));
  await new Promise<void>((r) => held.listen(P.held, '127.0.0.1', r));
  foreign = await startForeignHaproxy(stateDir, P.foreign, P.foreignBackend);
});

afterAll(async () => {
  for (const instance of ['ours', 'stealer', 'multi']) {
    const d = defaultPaths(instance, 'haproxy', env);
    await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  }
  await foreign?.stop();
  await new Promise((r) => held?.close(r));
  await backends.stop();
  for (const p of [stateDir, runDir]) rmSync(p, { recursive: true, force: true });
});

describe('render refuses a bind someone else serves', () => {
  it('another HAProxy on the port: exit 3, one line naming the holder, no HAProxy started, all its traffic stays with it', async () => {
    const r = await render(P.foreign, 'stealer');
    expect(r.exitCode, String(r.stderr)).toBe(3);
    const lines = String(r.stderr).trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^error: bind port in use: 127\\.0\\.0\\.1:${P.foreign} is already served by pid ${foreign.pid} \\(haproxy\\)`));
    const d = defaultPaths('stealer', 'haproxy', env);
    expect(await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).pid()).toBeNull();
    const theirs = await requestLoop(`http://127.0.0.1:${P.foreign}/id`, { ms: 10_000, max: 40, pauseMs: 0 });
    expect(theirs.answers).toEqual(new Map([[`b${P.foreignBackend}`, 40]]));
  });

  it('a plain listener on the port: HAProxy and nginx are refused the same way', async () => {
    for (const extra of [[], ['--proxy', 'nginx']]) {
      const r = await render(P.held, 'stealer', extra);
      expect(r.exitCode, String(r.stderr)).toBe(3);
      expect(String(r.stderr)).toContain(`bind port in use: 127.0.0.1:${P.held} is already served by pid ${process.pid}`);
    }
  });

  it('our own HAProxy on the port is not "someone else": a second render of the same bind applies', async () => {
    expect((await render(P.free, 'ours')).exitCode).toBe(0);
    expect(await httpGet(P.free)).toBe(`b${P.backend}`);
    const again = await render(P.free, 'ours', ['--lb-check', 'none']); // a structural change: a reload
    expect(again.exitCode, String(again.stderr)).toBe(0);
    expect(await httpGet(P.free)).toBe(`b${P.backend}`);
    const d = defaultPaths('ours', 'haproxy', env);
    expect(pidAlive((await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).pid())!)).toBe(true);
  });

  it('a second service on a held port next to one that serves: refused before any reload; the serving one answers 100% of a request loop', async () => {
    const file = (extra: string) => {
      const f = join(stateDir, 'multi.yaml');
      writeFileSync(f, `services:\n  - name: web\n    bind: 127.0.0.1:${P.multi}\n    mode: http\n    select: { backend: ["127.0.0.1:${P.backend}"] }\n${extra}`);
      return f;
    };
    const run = (f: string) => elastic(['render', '-c', f, '--instance-name', 'multi', '--start'], { env });
    expect((await run(file(''))).exitCode).toBe(0);
    const stop = { stopped: false };
    const loop = requestLoop(`http://127.0.0.1:${P.multi}/id`, { ms: 15_000, max: 2000 }, stop);
    for (let i = 0; i < 3; i++) {
      const r = await run(file(`  - name: taken\n    bind: 127.0.0.1:${P.held}\n    mode: http\n    select: { backend: ["127.0.0.1:${P.backend}"] }\n`));
      expect(r.exitCode, String(r.stderr)).toBe(3);
      expect(String(r.stderr)).toContain(`bind port in use: 127.0.0.1:${P.held}`);
    }
    await new Promise((r) => setTimeout(r, 500));
    stop.stopped = true;
    const served = await loop;
    expect(served.failures, `failed ${served.failed} of ${served.ok + served.failed}`).toEqual([]);
    expect(served.answers.get(`b${P.backend}`)).toBeGreaterThan(20);
  });
});
