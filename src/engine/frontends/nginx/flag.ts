import { createHash } from 'node:crypto';
import { lstat, mkdir, open, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ExitCode, UserError } from '../../errors.js';

/**
 * Where the closing flag (applier.ts) lives. nginx's workers test it with `if (-f ...)`, so they
 * must be able to reach it. Started by root, they run as another user (nobody), and the state
 * directory that holds `--output` by default is private (0700): a flag there is invisible to them
 * and every stat fails with EACCES, so the flag never took effect under the default paths. As
 * root the flag therefore lives in a directory of its own that anyone may search and only root
 * may write; it holds nothing but empty flag files, one per config (named by a digest of its
 * path), each only for the length of a reload, and the directory goes once it is empty. Not
 * root: nginx cannot switch users and its workers are ours, so the flag stays next to the config.
 */
export const SHARED_FLAG_DIR = '/run/elastic-nginx';

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

export function closingFlagPath(output: string, root = isRoot()): string {
  if (!root) return join(dirname(output), `.${basename(output)}.closing`);
  return join(SHARED_FLAG_DIR, `${createHash('sha256').update(output).digest('hex').slice(0, 16)}.closing`);
}

/** The shared directory exists and is root's alone (a directory another user made or can write would let them fake or hide flags). */
async function ensureSharedDir(): Promise<void> {
  await mkdir(SHARED_FLAG_DIR, { mode: 0o755 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  const st = await lstat(SHARED_FLAG_DIR);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new UserError(`${SHARED_FLAG_DIR} is not a directory that only root can write`, `remove it (render recreates it as root, mode 0755)`, ExitCode.refused);
  }
}

/** Create the flag: a new empty file (O_EXCL: never through a symlink), readable by the workers. */
export async function raiseFlag(path: string): Promise<void> {
  const shared = dirname(path) === SHARED_FLAG_DIR;
  for (let attempt = 0; ; attempt++) {
    if (shared) await ensureSharedDir();
    try {
      await (await open(path, 'wx', 0o644)).close();
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT: another render removed the emptied directory between our mkdir and open.
      // EEXIST: a flag left by a render that was killed during its reload.
      if (attempt < 3 && (code === 'ENOENT' || code === 'EEXIST')) {
        if (code === 'EEXIST') await rm(path, { force: true });
        continue;
      }
      throw e;
    }
  }
}

/** Remove the flag; the shared directory too once no other render has a flag up (rmdir of a non-empty one fails, and that is the check). */
export async function lowerFlag(path: string): Promise<void> {
  await rm(path, { force: true });
  if (dirname(path) === SHARED_FLAG_DIR) await rmdir(SHARED_FLAG_DIR).catch(() => {});
}
