import { userInfo, hostname } from 'node:os';
import { basename } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import { semanticDiff, type Change } from './diff.js';
import { checkFleetFile, digestOf } from './hosts.js';
import { Keys, versionOfKey, type FleetStore, type KeyValue } from './store.js';

/**
 * The fleet's desired state, versioned: every push writes an immutable `versions/<n>` and swaps
 * the `current` pointer with a compare-and-swap on its revision, so of two pushes at once one
 * wins and the other is told to re-read. A rollback is a new version carrying an old text.
 */
export interface VersionRecord {
  readonly v: 1;
  readonly version: number;
  readonly text: string;
  /** sha256 of the text (12 hex). */
  readonly hash: string;
  readonly file: string;
  readonly pushedAt: string;
  readonly pushedBy: string;
  readonly rollbackOf?: number;
}

export interface CurrentPointer {
  readonly v: 1;
  readonly version: number;
  readonly hash: string;
}

export interface PushResult {
  readonly v: 1;
  readonly fleet: string;
  /** The version committed (or that would be, with --dry-run); null when nothing changed. */
  readonly version: number | null;
  readonly previous: number | null;
  readonly committed: boolean;
  readonly dryRun: boolean;
  readonly unchanged: boolean;
  readonly hash: string;
  readonly hosts: string[];
  readonly changes: Change[];
  readonly warnings: string[];
}

const MAX_TEXT = 512 * 1024;

export async function readCurrent(store: FleetStore): Promise<{ pointer: CurrentPointer | null; kv: KeyValue | null }> {
  const kv = await store.get(Keys.current);
  return { pointer: kv ? parseJson<CurrentPointer>(kv.value, Keys.current) : null, kv };
}

export async function readVersion(store: FleetStore, n: number): Promise<VersionRecord> {
  const kv = await store.get(Keys.version(n));
  if (!kv) throw new UserError(`fleet ${store.fleet} has no version ${n}`, 'elastic cluster history lists the versions', ExitCode.usage);
  return parseJson<VersionRecord>(kv.value, Keys.version(n));
}

export interface PushOptions {
  readonly text: string;
  readonly file: string;
  readonly dryRun?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly rollbackOf?: number;
}

export async function push(store: FleetStore, opts: PushOptions): Promise<PushResult> {
  if (Buffer.byteLength(opts.text) > MAX_TEXT) throw new UserError(`${opts.file} is over ${MAX_TEXT / 1024} KiB`, 'a fleet file is a config, not data', ExitCode.config);
  // Exactly `run --check` (same parser, same messages), for the file and for every host's part.
  const check = checkFleetFile(opts.text, opts.file, opts.env);
  const warnings: string[] = [];
  const { pointer, kv } = await readCurrent(store);
  const prev = pointer ? await readVersion(store, pointer.version) : null;
  const hash = digestOf(opts.text);
  const base = { v: 1 as const, fleet: store.fleet, previous: pointer?.version ?? null, dryRun: Boolean(opts.dryRun), hash, hosts: Object.keys(check.hosts).sort(), warnings };
  if (prev && prev.hash === hash && opts.rollbackOf === undefined) {
    return { ...base, version: null, committed: false, unchanged: true, changes: [] };
  }
  const next = (pointer?.version ?? 0) + 1;
  const changes = semanticDiff(prev?.text ?? null, opts.text);
  if (opts.dryRun) return { ...base, version: next, committed: false, unchanged: false, changes };
  const record: VersionRecord = {
    v: 1,
    version: next,
    text: opts.text,
    hash,
    file: printable(basename(opts.file), 128),
    pushedAt: new Date().toISOString(),
    pushedBy: printable(`${safeUser()}@${hostname()}`, 128),
    ...(opts.rollbackOf !== undefined ? { rollbackOf: opts.rollbackOf } : {}),
  };
  const current: CurrentPointer = { v: 1, version: next, hash };
  const res = await store.txn(
    [
      { key: Keys.current, target: kv ? 'mod' : 'create', revision: kv ? kv.modRevision : 0 },
      { key: Keys.version(next), target: 'create', revision: 0 },
    ],
    [
      { key: Keys.version(next), value: JSON.stringify(record) },
      { key: Keys.current, value: JSON.stringify(current) },
    ],
  );
  if (!res.succeeded) {
    throw new UserError(`another push changed fleet ${store.fleet} since it was read (version ${pointer?.version ?? 'none'} is no longer current); nothing was committed`, 'look at elastic cluster history and diff, then push again', ExitCode.refused);
  }
  return { ...base, version: next, committed: true, unchanged: false, changes };
}

export interface HistoryEntry {
  readonly version: number;
  readonly hash: string;
  readonly file: string;
  readonly pushedAt: string;
  readonly pushedBy: string;
  readonly rollbackOf: number | null;
  readonly current: boolean;
}

export async function history(store: FleetStore, limit = 50): Promise<{ v: 1; fleet: string; current: number | null; versions: HistoryEntry[] }> {
  const [{ pointer }, { kvs }] = await Promise.all([readCurrent(store), store.list(Keys.versionsPrefix)]);
  const versions = kvs
    .filter((kv) => versionOfKey(kv.key) !== null)
    .map((kv) => parseJson<VersionRecord>(kv.value, kv.key))
    .sort((a, b) => b.version - a.version)
    .slice(0, limit)
    .map((r) => ({ version: r.version, hash: r.hash, file: r.file, pushedAt: r.pushedAt, pushedBy: r.pushedBy, rollbackOf: r.rollbackOf ?? null, current: r.version === pointer?.version }));
  return { v: 1, fleet: store.fleet, current: pointer?.version ?? null, versions };
}

export async function diffVersions(store: FleetStore, a: number, b?: number): Promise<{ v: 1; fleet: string; from: number; to: number; changes: Change[] }> {
  const to = b ?? (await readCurrent(store)).pointer?.version;
  if (to === undefined) throw noVersions(store.fleet);
  const [ra, rb] = await Promise.all([readVersion(store, a), readVersion(store, to)]);
  return { v: 1, fleet: store.fleet, from: a, to, changes: semanticDiff(ra.text, rb.text) };
}

/** Roll back to version `n` (default: the one before current), as a new version. */
export async function rollback(store: FleetStore, n: number | undefined, opts: { dryRun?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<PushResult> {
  const { pointer } = await readCurrent(store);
  if (!pointer) throw noVersions(store.fleet);
  const target = n ?? pointer.version - 1;
  if (target < 1) throw new UserError(`fleet ${store.fleet} has no version before ${pointer.version}`, 'name a version: elastic cluster rollback N', ExitCode.usage);
  if (target === pointer.version) throw new UserError(`version ${target} is already current`, 'elastic cluster history lists the versions', ExitCode.usage);
  const old = await readVersion(store, target);
  return push(store, { text: old.text, file: old.file, dryRun: opts.dryRun, env: opts.env, rollbackOf: target });
}

function noVersions(fleet: string): UserError {
  return new UserError(`fleet ${fleet} has no version yet`, 'elastic cluster push -c elastic.yaml --fleet NAME commits the first', ExitCode.usage);
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

export function parseJson<T>(text: string, key: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new UserError(`the fleet store holds an unreadable ${key}`, 'it was not written by elastic; inspect it with etcdctl get', ExitCode.config);
  }
}
