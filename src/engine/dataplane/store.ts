import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import type { StateStore } from '../runtime/state-store.js';
import { EMPTY_STATE, STATE_KEY, type MappingsState } from './model.js';
import { pidAlive } from '../runtime/pid.js';

/**
 * The `mappings` state key, and the lock that serialises "read state -> apply to the kernel ->
 * write state" between elastic processes on one host (a one-shot `map-image`, a `--watch`, a
 * `stop`, deploy's drain). The lock is a file holding the owner's pid: a holder killed with -9
 * leaves it behind and the next process takes it over once that pid is gone.
 */
export async function readMappings(store: StateStore): Promise<MappingsState> {
  const s = await store.get<MappingsState>(STATE_KEY);
  if (!s || s.v !== 1 || !Array.isArray(s.mappings)) return EMPTY_STATE;
  return s;
}

export async function writeMappings(store: StateStore, state: MappingsState): Promise<void> {
  if (state.mappings.length === 0) await store.delete(STATE_KEY);
  else await store.put(STATE_KEY, state);
}

export async function withMappingsLock<T>(store: StateStore, fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  await mkdir(store.location, { recursive: true });
  const file = join(store.location, `${STATE_KEY}.lock`);
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await open(file, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (owner > 0 && !pidAlive(owner)) {
        await rm(file, { force: true });
        continue;
      }
      if (Date.now() > end) {
        throw new UserError(`another elastic process (pid ${owner || '?'}) holds ${file}`, 'wait for it to finish, or remove the file if that process is gone', ExitCode.refused);
      }
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(file, { force: true });
  }
}
