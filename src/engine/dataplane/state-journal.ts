import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PRIVATE_FILE } from '../runtime/state-store.js';

/**
 * The mappings state's journal (`mappings.journal` beside `mappings.json`), so that a sync of a
 * long-running process pays one synchronous (O_DSYNC) append instead of a whole-file atomic write
 * (temp file, fsync, rename, fsync of the directory, plus the `.prev` link): at 1,000 backends
 * that write was the largest part of one backend change (docs/BENCHMARKS.md).
 *
 * `mappings.json` stays the snapshot. Each journal record is one line, `<sum> <body>\n`, with
 * body `{"base": <sum of the snapshot text>, "state": ...}` and sum the first 16 hex digits of
 * its sha256. The state is the last intact record whose base is the snapshot on disk, else the
 * snapshot. So a crash mid-append leaves a torn last line that is ignored (the previous state, as
 * a torn temp file was), and a snapshot written by anyone else (another process's compaction, an
 * older elastic, a hand edit) makes every record before it stale at once.
 *
 * A process's first write is always a snapshot (one-shot commands write once anyway), and it
 * appends only while the files are as it left them; every JOURNAL_MAX_RECORDS appends or
 * JOURNAL_MAX_BYTES, and after any failed append, the next write is a snapshot again.
 */
export const JOURNAL_MAX_RECORDS = 64;
export const JOURNAL_MAX_BYTES = 4 << 20;

export const sum = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);
export const journalOf = (snapshotFile: string) => snapshotFile.replace(/\.json$/, '.journal');

/** The state of the last intact record of `journal` that extends `snapshotText`, or undefined. */
export function lastRecord(snapshotText: string, journal: string): unknown {
  const base = sum(snapshotText);
  const lines = journal.split('\n');
  lines.pop(); // after the last newline: empty, or a torn record
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    const body = line.slice(17);
    if (line[16] !== ' ' || sum(body) !== line.slice(0, 16)) continue;
    const rec = JSON.parse(body) as { base?: unknown; state?: unknown };
    if (rec.base === base) return rec.state;
  }
  return undefined;
}

/** The journal's size, -1 when there is none (with the snapshot text, what identifies the state). */
export const journalSize = (file: string) => stat(journalOf(file)).then((s) => s.size, () => -1);

/** What this process left on disk for one snapshot file, while it may append. */
interface Writer {
  snapshotText: string;
  base: string;
  fh: FileHandle | null;
  size: number;
  records: number;
  /** An append is under way: its handle is closed by it, not by forget(). */
  busy: boolean;
}
const writers = new Map<string, Writer>();

/** After a snapshot of ours: later writes of this process may append to it. The old journal goes (its records are stale). */
export async function snapshotWritten(file: string, snapshotText: string): Promise<void> {
  forget(file);
  await rm(journalOf(file), { force: true });
  writers.set(file, { snapshotText, base: sum(snapshotText), fh: null, size: -1, records: 0, busy: false });
}

/** The files are not (or may not be) as this process left them: its next write is a snapshot. */
export function forget(file: string): void {
  const w = writers.get(file);
  writers.delete(file);
  if (w && !w.busy) void w.fh?.close().catch(() => {});
}

/** Whether the snapshot text and journal size read are the ones this process left (else forget). */
export function confirm(file: string, snapshotText: string | null, size: number): void {
  const w = writers.get(file);
  if (w && (w.snapshotText !== snapshotText || w.size !== size)) forget(file);
}

/**
 * Append `state` as a record, durable on return (O_DSYNC). Returns the snapshot text and
 * journal size it leaves, or null when a snapshot must be written instead. Throws when the
 * append failed (the caller writes a snapshot then, which makes any torn record stale).
 */
export async function append(file: string, state: unknown): Promise<{ snapshotText: string; size: number } | null> {
  const w = writers.get(file);
  if (!w || w.records >= JOURNAL_MAX_RECORDS || w.size >= JOURNAL_MAX_BYTES) return null;
  const body = JSON.stringify({ base: w.base, state });
  const line = `${sum(body)} ${body}\n`;
  w.busy = true;
  try {
    const created = w.fh === null;
    // O_DSYNC: the write returns once the record is durable, one step in the thread pool that
    // runs beside the plan (a write then an fdatasync was two, the second after the plan).
    // O_EXCL | O_NOFOLLOW: a new file of ours (the snapshot removed the last one), never a link.
    if (created) w.fh = await open(journalOf(file), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_DSYNC, PRIVATE_FILE);
    await w.fh!.write(line);
    if (created) await syncDir(dirname(file)); // the new journal's name is durable too
  } catch (err) {
    forget(file); // a torn record may end the file: never append after it
    throw err;
  } finally {
    w.busy = false;
    if (writers.get(file) !== w) void w.fh?.close().catch(() => {});
  }
  w.size = Math.max(w.size, 0) + Buffer.byteLength(line);
  w.records++;
  return { snapshotText: w.snapshotText, size: w.size };
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
