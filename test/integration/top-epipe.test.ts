import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../support/cli.js';
import { LineReader } from '../support/lines.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';

/**
 * A streaming command ends when its reader goes away: `| head -1` through a real shell pipe.
 * oclif swallows EPIPE on stdout, so these used to run forever. (No ports.)
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-epipe-'));
const env = { CI: 'true', ELASTIC_RUN_DIR: join(dir, 'run'), ELASTIC_STATE_DIR: join(dir, 'state'), BIN, NODE: process.execPath };
const pidFiles: string[] = [];
afterAll(() => {
  // A run without the fix leaves elastic running after the shell's timeout: end it by its pid.
  for (const f of pidFiles) {
    const pid = Number(existsSync(f) ? readFileSync(f, 'utf8') : 0);
    if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

/** `sh -c '{ elastic ARGS & ...; } | READER'`: the shell waits for every command of the pipeline, elastic included. */
function pipeline(args: string, reader: string, extra: Record<string, string> = {}) {
  const pidFile = join(dir, `elastic-${pidFiles.length}.pid`);
  pidFiles.push(pidFile);
  const script = `{ "$NODE" "$BIN" ${args} & echo $! > "$PIDFILE"; wait; } | ${reader}`;
  return execa('sh', ['-c', script], { env: { ...env, PIDFILE: pidFile, ...extra }, reject: false, stdin: 'ignore', timeout: 30_000 });
}

describe('a streaming command ends on a closed pipe (EPIPE)', () => {
  it('top --json --watch | head -1 exits after one line', async () => {
    const started = Date.now();
    const r = await pipeline('top --json --watch --interval 0.2 --no-docker', 'head -1');
    expect(r.timedOut, 'the pipeline never ended').toBe(false);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(String(r.stdout))).toMatchObject({ v: 1 });
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('discover --watch --json | head -1 exits at its next write', async () => {
    const file = join(dir, 'backends.yaml');
    writeFileSync(file, 'backends: ["198.18.0.10:80", "198.18.0.11:80"]\n');
    const p = pipeline('discover --watch --json --file "$F"', '{ head -1; echo head-done; }', { F: file });
    const out = new LineReader(p.stdout!);
    await out.next((l) => l === 'head-done', 'head to take its line', 20_000);
    // The reader is gone; the watch finds out when it writes the next change.
    writeFileSync(file, 'backends: ["198.18.0.10:80", "198.18.0.11:80", "198.18.0.12:80"]\n');
    const r = await p;
    expect(r.timedOut, 'discover --watch kept running after its reader went away').toBe(false);
    expect(JSON.parse(out.lines[0]!)).toMatchObject({ type: 'added' });
  });
});
