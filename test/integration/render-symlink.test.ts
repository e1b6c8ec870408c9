import { execa } from 'execa';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';

// Issue 13 item 2: a directory --output lives in may be writable by someone else. The real
// unprivileged user `nobody` plants symlinks there (at the output, the .last-good backup and the
// staged file) pointing at root-only files; render must never read, copy or overwrite through
// them, and what it writes is never more readable than what it replaces. No proxy runs: the
// reload command is `true`. Ports are only printed into configs (22530, 22531).
const NOBODY = 65534;
let dir: string;
let env: NodeJS.ProcessEnv;
let shared: string;
let secret: string;

const asNobody = (...argv: string[]) => execa('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--', ...argv], { stdin: 'ignore' });
const render = (output: string, backends: string[], extra: string[] = []) =>
  elastic(['render', '--service', 'sym', '--bind', '127.0.0.1:22531', ...backends.flatMap((b) => ['--backend', b]), '--output', output, '--reload-command', '["true"]', '--force', ...extra], { env });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-sym-'));
  await chmod(dir, 0o755);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  shared = join(dir, 'shared');
  await mkdir(shared, { mode: 0o755 });
  await chown(shared, NOBODY, NOBODY);
  secret = join(dir, 'secret.txt');
  await writeFile(secret, 'TOPSECRET root only\n', { mode: 0o600 });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('render never follows a symlink it did not make', () => {
  it('a symlink at --output is refused: nothing read through it, nothing written through it', async () => {
    const out = join(shared, 'a.cfg');
    await asNobody('ln', '-s', secret, out);
    for (const extra of [[], ['--dry-run']]) {
      const r = await render(out, ['127.0.0.1:22530'], extra);
      expect(r.exitCode, String(r.stderr)).toBe(2);
      expect(r.stderr).toMatch(/a\.cfg is a symlink; render does not follow symlinks/);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/TOPSECRET/);
    }
    expect(await readFile(secret, 'utf8')).toBe('TOPSECRET root only\n');
    expect((await lstat(out)).isSymbolicLink()).toBe(true);
    await expect(lstat(`${out}.last-good`)).rejects.toThrow(/ENOENT/);
  });

  it('symlinks planted at the backup and staged paths are replaced, not written through; modes never widen', async () => {
    const out = join(shared, 'b.cfg');
    const first = await render(out, ['127.0.0.1:22530']);
    expect(first.exitCode, String(first.stderr)).toBe(0);
    expect((await stat(out)).mode & 0o777).toBe(0o640);
    await asNobody('ln', '-s', secret, `${out}.last-good`);
    await asNobody('ln', '-s', secret, join(shared, '.b.cfg.staged'));
    const second = await render(out, ['127.0.0.1:22530', '127.0.0.1:22532']);
    expect(second.exitCode, String(second.stderr)).toBe(0);
    expect(await readFile(secret, 'utf8')).toBe('TOPSECRET root only\n');
    expect((await lstat(`${out}.last-good`)).isSymbolicLink()).toBe(false);
    expect(await readFile(`${out}.last-good`, 'utf8')).toMatch(/127\.0\.0\.1:22530/);
    expect((await stat(`${out}.last-good`)).mode & 0o777).toBe(0o640);
    // An operator's stricter mode is kept across renders (and in the backup).
    await chmod(out, 0o600);
    const third = await render(out, ['127.0.0.1:22530']);
    expect(third.exitCode, String(third.stderr)).toBe(0);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    expect((await stat(`${out}.last-good`)).mode & 0o777).toBe(0o600);
  });

  it('--output naming a directory is a one-line user error', async () => {
    const r = await render(shared, ['127.0.0.1:22530']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/is a directory; --output names the config file to write/);
    expect(r.stderr).not.toMatch(/unexpected error|\n\s+at /);
  });
});
