import { afterAll, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JOURNAL_MAX_RECORDS } from '../../src/engine/dataplane/state-journal.js';
import type { MappingsState } from '../../src/engine/dataplane/model.js';

/**
 * Issue 18 (one change < 20 ms at 1,000 backends): after its first write (a snapshot,
 * mappings.json), a process appends the state to mappings.journal with one fdatasync. Crash
 * safety stays that of the atomic file: a torn or damaged record is ignored (the state before
 * it), a snapshot written by anyone else makes the journal stale, a new process reads the last
 * intact record. `fresh()` loads the store module anew: another process, with no memory.
 */
const dir = mkdtempSync(join(tmpdir(), 'mapimg-state-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const snapshot = join(dir, 'mappings.json');
const journal = join(dir, 'mappings.journal');

const state = (generation: number): MappingsState => ({
  v: 1,
  generation,
  mappings: [{ spec: { id: 'tcp-27000', protocol: 'tcp', port: 27000, image: 'web:1', containerPort: 80, staticBackends: [], dataplane: 'nft', spread: 'hash', created: 'x' }, backends: Array.from({ length: 100 }, (_, i) => ({ id: `static:${i}`, name: `b${i}`, address: `198.18.76.${1 + (i % 250)}`, port: 20000 + i })), draining: [], updated: 'x' }],
});

const fresh = async () => {
  vi.resetModules();
  const { FileStateStore: Store } = await import('../../src/engine/runtime/state-store.js');
  return { ...(await import('../../src/engine/dataplane/store.js')), store: new Store(dir) };
};
const gen = async () => {
  const { readMappings, store } = await fresh();
  return (await readMappings(store)).generation;
};

describe('mappings state journal', () => {
  it('first write a snapshot, later ones appended; a new process reads the last record', async () => {
    const { readMappings, writeMappings, store } = await fresh();
    await readMappings(store);
    await writeMappings(store, state(1));
    expect(JSON.parse(readFileSync(snapshot, 'utf8')).generation).toBe(1);
    expect(existsSync(journal)).toBe(false);
    for (const g of [2, 3, 4]) {
      await readMappings(store); // as the applier does, under the lock
      await writeMappings(store, state(g));
    }
    expect(JSON.parse(readFileSync(snapshot, 'utf8')).generation).toBe(1); // not rewritten
    expect(readFileSync(journal, 'utf8').split('\n')).toHaveLength(4); // 3 records
    expect(statSync(journal).mode & 0o777).toBe(0o600);
    expect(await gen()).toBe(4);
  });

  it('a record torn by a crash, or damaged, is ignored: the state before it', async () => {
    truncateSync(journal, statSync(journal).size - 40); // killed mid-append
    expect(await gen()).toBe(3);
    const lines = readFileSync(journal, 'utf8').split('\n');
    lines[1] = lines[1]!.replace('"generation":3', '"generation":9'); // a complete line, wrong sum
    writeFileSync(journal, lines.join('\n'));
    expect(await gen()).toBe(2);
  });

  it('a snapshot written by another writer (or by hand) makes the journal stale; the writer then snapshots', async () => {
    const { readMappings, writeMappings, store } = await fresh();
    await readMappings(store);
    await writeMappings(store, state(10)); // its first write: a snapshot, the old journal goes
    await readMappings(store);
    await writeMappings(store, state(11)); // appended
    expect(await gen()).toBe(11);
    writeFileSync(snapshot, `${JSON.stringify(state(20), null, 2)}\n`); // another writer
    expect(await gen()).toBe(20);
    expect((await readMappings(store)).generation).toBe(20);
    await writeMappings(store, state(21)); // the files are not as it left them: a snapshot
    expect(JSON.parse(readFileSync(snapshot, 'utf8')).generation).toBe(21);
    expect(await gen()).toBe(21);
  });

  it('a journal path that is not its own (a symlink put there) is never written through: a snapshot instead', async () => {
    const { readMappings, writeMappings, store } = await fresh();
    await readMappings(store);
    await writeMappings(store, state(30)); // snapshot; the next write would create the journal
    const target = join(dir, 'elsewhere');
    writeFileSync(target, 'not yours\n');
    symlinkSync(target, journal);
    await readMappings(store);
    await writeMappings(store, state(31));
    expect(readFileSync(target, 'utf8')).toBe('not yours\n');
    expect(JSON.parse(readFileSync(snapshot, 'utf8')).generation).toBe(31);
    expect(existsSync(journal)).toBe(false);
    expect(await gen()).toBe(31);
  });

  it(`after ${JOURNAL_MAX_RECORDS} records the next write is a snapshot; no mapping left: both files go`, async () => {
    const { readMappings, writeMappings, store } = await fresh();
    await readMappings(store);
    await writeMappings(store, state(100));
    for (let g = 101; g <= 101 + JOURNAL_MAX_RECORDS; g++) {
      await readMappings(store);
      await writeMappings(store, state(g));
    }
    expect(JSON.parse(readFileSync(snapshot, 'utf8')).generation).toBe(101 + JOURNAL_MAX_RECORDS);
    expect(existsSync(journal)).toBe(false);
    await readMappings(store);
    await writeMappings(store, state(200));
    expect(existsSync(journal)).toBe(true);
    await writeMappings(store, { v: 1, generation: 201, mappings: [] });
    expect(existsSync(snapshot) || existsSync(journal)).toBe(false);
    expect((await readMappings(store)).mappings).toEqual([]);
  });
});
