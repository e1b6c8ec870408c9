import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import { isIdent } from '../model/validate.js';
import { stateDir } from './paths.js';

/**
 * The embedded state store: one directory, one JSON file per concern (`mappings.json`,
 * `render-web.json`, `deploy-api.json`). Writes are atomic: temp file, fsync, rename, fsync the
 * directory, so a crash leaves the old or the new file, never half of one.
 *
 * Kept behind this small interface so a fleet host keeps its fleet-wide keys (`elb`) in the fleet
 * store (src/engine/fleet/fleet-state-store.ts) and the rest here; callers do not know which.
 */
export interface StateStore {
  get<T>(key: string): Promise<T | undefined>;
  put<T>(key: string, value: T): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every key held (any order). */
  keys(): Promise<string[]>;
  readonly location: string;
  /**
   * Read-change-write that holds when other writers (other hosts) change the key at the same
   * time: `fn` may run again on the newer value. Returning the value it was given writes nothing.
   * Absent: get then put (one process writes the key).
   */
  update?<T>(key: string, fn: (current: T | undefined) => T | undefined | Promise<T | undefined>): Promise<T | undefined>;
  /** Call `changed` when someone else may have changed `key` (re-read it); returns the unsubscribe. */
  watch?(key: string, changed: () => void): () => void;
}

/** `store.update` where the store has one, else get, change, put. */
export async function updateState<T>(store: StateStore, key: string, fn: (current: T | undefined) => T | undefined | Promise<T | undefined>): Promise<T | undefined> {
  if (store.update) return store.update(key, fn);
  const before = await store.get<T>(key);
  const after = await fn(before);
  if (after !== before && after !== undefined) await store.put(key, after);
  return after;
}

export class FileStateStore implements StateStore {
  constructor(readonly location: string = stateDir()) {}

  private path(key: string): string {
    if (!isIdent(key)) throw new Error(`invalid state key ${JSON.stringify(key)}`);
    return join(this.location, `${key}.json`);
  }

  async get<T>(key: string): Promise<T | undefined> {
    const file = this.path(key);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new UserError(
        `state file ${file} is not valid JSON`,
        'move it aside and re-run; elastic rebuilds state from what is running',
        ExitCode.config,
      );
    }
  }

  async put<T>(key: string, value: T): Promise<void> {
    await writeFileAtomic(this.path(key), `${JSON.stringify(value, null, 2)}\n`);
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async keys(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.location);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length)).filter(isIdent);
  }
}

/** Write a file so readers see the old or the new content, never a mix, even across a crash. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${file.slice(dir.length + 1)}.${process.pid}.${Date.now()}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
