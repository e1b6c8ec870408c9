import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';
import { readMappings, writeMappings } from '../../src/engine/dataplane/store.js';
import type { MappingsState } from '../../src/engine/dataplane/model.js';

/**
 * Issue 18 (one change at 1,000 backends): the mappings state this process wrote is reused when
 * the file still holds exactly that text, so a sync does not parse its own 150 kB write again.
 * Any other content (another process, a hand edit of the same size) is read as before.
 */
const dir = mkdtempSync(join(tmpdir(), 'mapimg-state-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const state = (generation: number, port = 80): MappingsState => ({
  v: 1,
  generation,
  mappings: [{ spec: { id: 'tcp-26220', protocol: 'tcp', port: 26220, image: 'web:1', containerPort: 80, staticBackends: [], dataplane: 'nft', spread: 'hash', created: 'x' }, backends: Array.from({ length: 1000 }, (_, i) => ({ id: `static:${i}`, name: `b${i}`, address: `198.18.64.${i % 250}`, port: port + (i % 3) })), draining: [], updated: 'x' }],
});

describe('mappings state: reuse of what this process wrote', () => {
  it('returns the written state itself while the file holds its text; re-reads anything else', async () => {
    const store = new FileStateStore(dir);
    const file = join(dir, 'mappings.json');
    const written = state(1);
    await writeMappings(store, written);
    expect(await readMappings(store)).toBe(written); // the same object: its rule mappings stay cached too

    // Another process's write (same shape, another generation).
    writeFileSync(file, `${JSON.stringify(state(2), null, 2)}\n`);
    expect((await readMappings(store)).generation).toBe(2);

    // A hand edit that keeps the size: one port digit changed.
    await writeMappings(store, state(3));
    writeFileSync(file, readFileSync(file, 'utf8').replaceAll('"port": 81', '"port": 82'));
    const edited = await readMappings(store);
    expect(edited.generation).toBe(3);
    expect(edited.mappings[0]!.backends.filter((b) => b.port === 81)).toHaveLength(0);

    // Removing the last mapping deletes the file: nothing is left to reuse.
    await writeMappings(store, { v: 1, generation: 4, mappings: [] });
    expect((await readMappings(store)).mappings).toEqual([]);
  });
});
