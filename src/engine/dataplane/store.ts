import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import { FileStateStore, type StateStore } from '../runtime/state-store.js';
import { EMPTY_STATE, isMappingId, STATE_KEY, type MappingsState } from './model.js';
import { pidAlive } from '../runtime/pid.js';
import { append, confirm, forget, journalOf, journalSize, lastRecord, snapshotWritten } from './state-journal.js';

/**
 * The `mappings` state key, and the lock that serialises "read state -> apply to the kernel ->
 * write state" between elastic processes on one host (a one-shot `map-image`, a `--watch`, a
 * `stop`, deploy's drain). The lock is a file holding the owner's pid: a holder killed with -9
 * leaves it behind and the next process takes it over once that pid is gone.
 */
export async function readMappings(store: StateStore): Promise<MappingsState> {
  const file = fileOf(store);
  const disk = file ? await onDisk(file) : null;
  const known = file && disk ? unchanged(file, disk) : null;
  if (known) return known;
  const s = await store.get<unknown>(STATE_KEY);
  if (s === undefined) return EMPTY_STATE;
  // The journal's last record on this snapshot, if any (state-journal.ts).
  const journaled = file && disk?.text && disk.size > 0 ? lastRecord(disk.text, (await readFile(journalOf(file), 'utf8').catch(() => ''))) : undefined;
  const state = journaled ?? s;
  const problem = shapeProblem(state);
  if (problem) {
    // Valid JSON of the wrong shape is as unusable as invalid JSON: refused the same way, never
    // half-read (it used to end in "unexpected error: Cannot read properties of undefined").
    throw new UserError(
      `state file ${join(store.location, `${STATE_KEY}.${journaled ? 'journal' : 'json'}`)} is not a mappings state (${problem})`,
      'move it aside and re-run; `elastic map-image list` and `stop` read the live rules from the kernel',
      ExitCode.config,
    );
  }
  if (file && disk?.text) lastSeen.set(file, { ...disk, text: disk.text, state: state as MappingsState });
  return state as MappingsState;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown) => typeof v === 'string';
const isNum = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** What is wrong with a parsed state file ('' when it has the shape MappingsState promises). */
export function shapeProblem(s: unknown): string {
  if (!isObj(s)) return 'not an object';
  if (s.v !== 1) return `version ${JSON.stringify(s.v)?.slice(0, 20)}, expected 1`;
  if (!isNum(s.generation)) return 'generation is not a number';
  if (!Array.isArray(s.mappings)) return 'mappings is not a list';
  for (const [i, m] of s.mappings.entries()) {
    const at = `mappings[${i}]`;
    if (!isObj(m) || !isObj(m.spec)) return `${at}.spec is missing`;
    const spec = m.spec;
    if (!isStr(spec.id) || !isMappingId(spec.id as string)) return `${at}.spec.id is not a mapping id`;
    if (spec.protocol !== 'tcp' && spec.protocol !== 'udp') return `${at}.spec.protocol`;
    if (spec.dataplane !== 'nft' && spec.dataplane !== 'iptables') return `${at}.spec.dataplane`;
    if (!isNum(spec.port) || !isNum(spec.containerPort) || !isStr(spec.image) || !isStr(spec.created)) return `${at}.spec fields`;
    if (!Array.isArray(spec.staticBackends) || !spec.staticBackends.every(isStr)) return `${at}.spec.staticBackends`;
    if (!Array.isArray(m.backends) || !m.backends.every((b) => isObj(b) && isStr(b.id) && isStr(b.name) && isStr(b.address) && isNum(b.port))) return `${at}.backends`;
    if (!Array.isArray(m.draining) || !m.draining.every(isStr)) return `${at}.draining`;
    if (!isStr(m.updated)) return `${at}.updated`;
  }
  return '';
}

/**
 * Temp files of state writes killed with -9 (`.mappings.json.<pid>.<ms>.tmp`, 0 bytes when the
 * kill came before the write) stay forever: remove those whose writer is gone. Called under the
 * mappings lock, so no writer of ours is mid-write.
 */
export async function removeStaleTemps(store: StateStore): Promise<number> {
  let removed = 0;
  for (const name of await readdir(store.location).catch(() => [] as string[])) {
    const m = new RegExp(`^\\.${STATE_KEY}\\.json\\.(\\d+)\\.\\d+\\.tmp$`).exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    const file = join(store.location, name);
    if (!(await stat(file).catch(() => null))?.isFile()) continue;
    await rm(file, { force: true });
    removed++;
  }
  return removed;
}

export async function writeMappings(store: StateStore, state: MappingsState): Promise<void> {
  const file = fileOf(store);
  if (!file) {
    await (state.mappings.length === 0 ? store.delete(STATE_KEY) : store.put(STATE_KEY, state));
    return;
  }
  lastSeen.delete(file);
  if (state.mappings.length === 0) {
    forget(file);
    await store.delete(STATE_KEY);
    await rm(journalOf(file), { force: true });
    return;
  }
  // A failed append (disk full, a file that is not ours) falls back on the snapshot below.
  const appended = await append(file, state).catch(() => null);
  if (appended) {
    lastSeen.set(file, { text: appended.snapshotText, size: appended.size, state });
    return;
  }
  await store.put(STATE_KEY, state);
  const text = `${JSON.stringify(state, null, 2)}\n`; // as FileStateStore.put writes it
  await snapshotWritten(file, text);
  lastSeen.set(file, { text, size: -1, state });
}

/**
 * The state this process last wrote or parsed, with the snapshot's text and the journal's size.
 * A sync at 1,000 backends spent 2-3 ms parsing and validating a 150 kB state it had written
 * itself, and its entries being new objects made every rule mapping be computed again
 * (toRuleMapping's cache is per entry). The files are still read every time: only a
 * byte-identical snapshot and a journal of the same size reuse the state, so another writer, a
 * hand edit or a format change is a parse as before.
 */
const lastSeen = new Map<string, { text: string; size: number; state: MappingsState }>();

const fileOf = (store: StateStore) => (store instanceof FileStateStore ? join(store.location, `${STATE_KEY}.json`) : null);

async function onDisk(file: string): Promise<{ text: string | null; size: number }> {
  const [text, size] = await Promise.all([readFile(file, 'utf8').catch(() => null), journalSize(file)]);
  confirm(file, text, size); // the next write appends only to files as this process left them
  return { text, size };
}

function unchanged(file: string, disk: { text: string | null; size: number }): MappingsState | null {
  const seen = lastSeen.get(file);
  if (seen && disk.text === seen.text && disk.size === seen.size) return seen.state;
  lastSeen.delete(file);
  return null;
}

const swept = new Set<string>();

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
    if (!swept.has(store.location)) {
      swept.add(store.location); // once per process and directory: at start
      await removeStaleTemps(store);
    }
    return await fn();
  } finally {
    await rm(file, { force: true });
  }
}
