import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where elastic keeps things. Root: /var/lib/elastic (state) and /run/elastic (status sockets).
 * Otherwise the user's XDG dirs. ELASTIC_STATE_DIR / ELASTIC_RUN_DIR override both (tests, and
 * operators running several independent instances on one host).
 */
const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ELASTIC_STATE_DIR) return env.ELASTIC_STATE_DIR;
  if (isRoot()) return '/var/lib/elastic';
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'elastic');
}

export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ELASTIC_RUN_DIR) return env.ELASTIC_RUN_DIR;
  if (isRoot()) return '/run/elastic';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'elastic');
  return join(stateDir(env), 'run');
}

/**
 * State and run directories hold secrets (deploy env, API state) and control sockets: 0700, their
 * files 0600. Checked at start: a missing directory is made private, a looser one (or a looser
 * file directly inside) is tightened, and each fix is reported so the operator learns of it.
 * Symlinks are never followed (lstat) and never changed.
 */
export async function securePrivateDirs(dirs: readonly string[]): Promise<string[]> {
  const fixes: string[] = [];
  for (const dir of [...new Set(dirs)]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const st = await lstat(dir);
    if (!st.isDirectory()) continue;
    if (st.mode & 0o077) {
      await chmodNoFollow(dir, 0o700, constants.O_DIRECTORY);
      fixes.push(`${dir} was mode ${(st.mode & 0o777).toString(8)}, now 700`);
    }
    for (const name of await readdir(dir)) {
      const f = join(dir, name);
      const fs = await lstat(f).catch(() => null);
      if (!fs?.isFile() || !(fs.mode & 0o077)) continue;
      await chmodNoFollow(f, 0o600);
      fixes.push(`${f} was mode ${(fs.mode & 0o777).toString(8)}, now 600`);
    }
  }
  return fixes;
}

/** chmod through a handle opened without following a symlink (one swapped in after lstat). */
async function chmodNoFollow(path: string, mode: number, flags = 0): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | flags);
  try {
    await fh.chmod(mode);
  } finally {
    await fh.close();
  }
}
