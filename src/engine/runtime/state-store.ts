import { randomBytes } from 'node:crypto';
import { copyFile, link, lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import { isIdent } from '../model/validate.js';
import type { Logger } from './logger.js';
import { stateDir } from './paths.js';
import { pidAlive } from './pid.js';

/**
 * The embedded state store: one directory, one JSON file per concern (`mappings.json`,
 * `render-web.json`, `deploy-api.json`). Writes are atomic: temp file, fsync, rename, fsync the
 * directory, so a crash leaves the old or the new file, never half of one. Writes to one key are
 * serialized (last call wins) and every temp file has its own name, so two writers in one
 * millisecond cannot share (and corrupt) one temp file.
 *
 * Kept behind this small interface so a fleet host keeps its fleet-wide keys (`elb`) in the fleet
 * store (src/engine/fleet/fleet-state-store.ts) and the rest here; callers do not know which.
 */
export interface StateStore {
  /** `valid`: the value's shape; a value of another shape is treated like unparseable text. */
  get<T>(key: string, valid?: (v: unknown) => v is T): Promise<T | undefined>;
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

export interface FileStateStoreOptions {
  /**
   * A daemon must never stop on a damaged state file: the file is moved aside
   * (`<key>.json.corrupt-<time>`), the previous good copy (`<key>.json.prev`, kept by every
   * write) is put back, and a warning says so. Without it (one-shot commands) a damaged file is
   * a UserError naming it.
   */
  recover?: boolean;
  logger?: Logger;
}

/** Files are the owner's only: state can hold secrets (deploy env). */
export const PRIVATE_FILE = 0o600;
export const PRIVATE_DIR = 0o700;

export class FileStateStore implements StateStore {
  /** The last write queued per key: writes to one key run one after another. */
  private readonly writing = new Map<string, Promise<void>>();

  constructor(
    readonly location: string = stateDir(),
    private readonly opts: FileStateStoreOptions = {},
  ) {}

  private path(key: string): string {
    if (!isIdent(key)) throw new Error(`invalid state key ${JSON.stringify(key)}`);
    return join(this.location, `${key}.json`);
  }

  async get<T>(key: string, valid?: (v: unknown) => v is T): Promise<T | undefined> {
    const file = this.path(key);
    await this.writing.get(key); // read what this process wrote last
    const text = await readIfExists(file);
    if (text === null) return undefined;
    const value = parseAs(text, valid);
    if (value.ok) return value.value;
    if (!this.opts.recover) {
      throw new UserError(`state file ${file} ${value.why}`, 'move it aside and re-run; elastic rebuilds state from what is running', ExitCode.config);
    }
    return this.recover(key, file, value.why, valid);
  }

  /** Move the damaged file aside and fall back on the previous good copy (or nothing). */
  private async recover<T>(key: string, file: string, why: string, valid?: (v: unknown) => v is T): Promise<T | undefined> {
    const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(file, aside).catch(() => {});
    const prevText = await readIfExists(`${file}.prev`);
    const prev = prevText === null ? null : parseAs(prevText, valid);
    const log = this.opts.logger;
    if (prev?.ok) {
      await copyFile(`${file}.prev`, file).catch(() => {});
      log?.warn(`state file ${file} ${why}: moved aside to ${aside}; the previous good copy is used`, { key });
      return prev.value;
    }
    log?.warn(`state file ${file} ${why}: moved aside to ${aside}; no good copy, starting from what is running`, { key });
    return undefined;
  }

  put<T>(key: string, value: T): Promise<void> {
    const file = this.path(key);
    const text = `${JSON.stringify(value, null, 2)}\n`;
    const run = (this.writing.get(key) ?? Promise.resolve()).then(async () => {
      await ensurePrivateDir(this.location);
      // The copy that stays good if the new file is ever damaged (a hard link: no data copied).
      await rm(`${file}.prev`, { force: true });
      await link(file, `${file}.prev`).catch(() => {});
      await writeFileAtomic(file, text, PRIVATE_FILE);
    });
    const tail = run.catch(() => {});
    this.writing.set(key, tail);
    void tail.then(() => {
      if (this.writing.get(key) === tail) this.writing.delete(key);
    });
    return run;
  }

  async delete(key: string): Promise<void> {
    await this.writing.get(key);
    await rm(this.path(key), { force: true });
    await rm(`${this.path(key)}.prev`, { force: true });
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

  /**
   * Temp files of writers that died mid-write (kill -9): `.<name>.<pid>.<...>.tmp` whose pid is
   * gone. Run at start; returns what was removed.
   */
  async removeStaleTemps(): Promise<string[]> {
    return removeStaleTemps(this.location);
  }
}

type Parsed<T> = { ok: true; value: T } | { ok: false; why: string };

function parseAs<T>(text: string, valid?: (v: unknown) => v is T): Parsed<T> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, why: 'is not valid JSON' };
  }
  if (valid && !valid(v)) return { ok: false, why: 'is valid JSON but not the expected shape' };
  return { ok: true, value: v as T };
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
}

const TEMP_RE = /^\..+\.(\d+)\.[A-Za-z0-9-]+\.tmp$/;

export async function removeStaleTemps(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const pid = Number(TEMP_RE.exec(n)?.[1]);
    // A live writer's (ours included) may be mid-write.
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    const st = await lstat(join(dir, n)).catch(() => null);
    if (!st?.isFile()) continue;
    await rm(join(dir, n), { force: true });
    removed.push(n);
  }
  return removed;
}

let tempSeq = 0;

/** Write a file so readers see the old or the new content, never a mix, even across a crash. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  // pid first (stale temps are found by it), then a name no other write of any process shares.
  const tmp = join(dir, `.${file.slice(dir.length + 1)}.${process.pid}.${++tempSeq}-${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
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
