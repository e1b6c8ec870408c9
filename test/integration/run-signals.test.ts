import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * Signals a daemon gets from systemd and operators at any moment. Found by bench/run/chaos.ts:
 * a SIGHUP sent while `elastic run` was still starting (before its handler was installed) ended
 * the daemon with Node's default action: no log line, no exit code, 7 times in 10 minutes.
 */
const stateDir = ownedStateDir('run-signals-state-');
const runDir = mkdtempSync(join(tmpdir(), 'run-signals-run-'));
const dir = mkdtempSync(join(tmpdir(), 'run-signals-cfg-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const file = join(dir, 'elastic.yaml');
const PORT = 18905;

afterAll(async () => {
  const d = defaultPaths('run-signals', 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop();
  for (const p of [stateDir, runDir, dir]) rmSync(p, { recursive: true, force: true });
});

describe('elastic run and SIGHUP', () => {
  it('a SIGHUP while the daemon starts is kept and applied once it runs, never the end of it', async () => {
    const config = (port: number) => `version: 1\nname: signals\nsources:\n  s: { static: { backends: ["127.0.0.1:18906"] } }\nservices:\n  - name: web\n    sources: [s]\n    haproxy: { port: ${port}, mode: tcp }\n`;
    writeFileSync(file, config(PORT));
    // Its command loads 2 s late (test/support/slow-start.mjs): SIGHUPs land while it starts.
    const slow = fileURLToPath(new URL('../support/slow-start.mjs', import.meta.url));
    const child = spawn(process.execPath, [BIN, 'run', '-c', file], { env: { ...process.env, ...env, CI: 'true', NODE_OPTIONS: `--import=${slow}` }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    const sock = join(runDir, 'run.signals.sock');
    try {
      await new Promise((r) => setTimeout(r, 1000));
      expect(existsSync(sock)).toBe(false); // still starting
      // The config changes, and a reload is asked for, while the daemon starts.
      writeFileSync(file, config(PORT).replace('mode: tcp', 'mode: http'));
      for (let i = 0; i < 3 && child.exitCode === null; i++) {
        child.kill('SIGHUP');
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitFor(async () => child.exitCode !== null || child.signalCode !== null || (await requestStatus<Snapshot>(sock)).pid === child.pid, 'the daemon answering on its status socket', 30_000, 100);
      expect(child.exitCode, stderr).toBeNull();
      // The remembered SIGHUP was replayed: the config in force is the one written after start.
      const want = JSON.parse(String((await elastic(['run', '--check', '--json', '-c', file], { env })).stdout)).config.hash as string;
      await waitFor(async () => ((await requestStatus<Snapshot>(sock)).config as { hash?: string }).hash === want, `config ${want} in force`, 10_000, 100);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
    }
    const how = await exit;
    expect(how.signal, `the daemon ended by ${how.signal}: ${stderr}`).toBeNull();
    expect(how.code).toBe(0);
  });
});
