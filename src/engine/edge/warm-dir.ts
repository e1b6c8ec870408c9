import { lstat, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pidAlive } from '../runtime/pid.js';
import type { Logger } from '../runtime/logger.js';

/**
 * The warm path's private directories (`edge-haproxy-*` under the run dir: HAProxy's config and
 * stats socket). A clean stop removes its own; an edge killed with -9 cannot, so every start
 * removes the ones left behind: only a real directory (never a symlink), owned by us, whose
 * `owner` marker (a regular file, ours) names an edge and an HAProxy that are both gone. Anything
 * else (another user's, no marker, a live owner, a pid we cannot read) is left alone.
 */
export const WARM_DIR_PREFIX = 'edge-haproxy-';
const MARKER = 'owner';

export interface WarmOwner {
  edge: number;
  haproxy?: number;
}

export async function writeOwner(dir: string, owner: WarmOwner): Promise<void> {
  await writeFile(join(dir, MARKER), JSON.stringify(owner), { mode: 0o600 });
}

/** Remove the leftovers of dead edges under `base`; returns the names removed. */
export async function sweepWarmDirs(base: string, log?: Logger): Promise<string[]> {
  const uid = process.geteuid?.() ?? -1;
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(base);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(WARM_DIR_PREFIX)) continue;
    const dir = join(base, name);
    try {
      const st = await lstat(dir);
      if (!st.isDirectory() || st.uid !== uid) continue;
      const m = await lstat(join(dir, MARKER));
      if (!m.isFile() || m.uid !== uid || m.size > 256) continue;
      const owner = parseOwner(await readFile(join(dir, MARKER), 'utf8'));
      if (!owner || pidAlive(owner.edge) || (owner.haproxy !== undefined && pidAlive(owner.haproxy))) continue;
      await rm(dir, { recursive: true, force: true }); // rm removes symlinks inside, never their targets
      removed.push(name);
    } catch {
      // gone meanwhile, no marker, unreadable: not ours to judge
    }
  }
  if (removed.length) log?.info('removed warm-path directories of edges that are gone', { dirs: removed.join(',') });
  return removed;
}

export function parseOwner(text: string): WarmOwner | null {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    const ok = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0;
    if (!ok(v.edge) || (v.haproxy !== undefined && !ok(v.haproxy))) return null;
    return v.haproxy === undefined ? { edge: v.edge } : { edge: v.edge, haproxy: v.haproxy };
  } catch {
    return null;
  }
}
