import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { securePrivateDirs } from '../../src/engine/runtime/paths.js';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';

/** The state store against the real filesystem (issue 12 finding 1, issue 13 items 3 and 11). */
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'run-store-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('FileStateStore', () => {
  it('many writes to one key in the same millisecond: the file is always whole and the last write wins', async () => {
    const store = new FileStateStore(tmp());
    for (let round = 0; round < 20; round++) {
      const writes = Array.from({ length: 25 }, (_, i) => store.put('run-x', { v: 1, round, i, pad: 'x'.repeat(2000 + ((i * 37) % 500)) }));
      await Promise.all(writes);
      const text = readFileSync(join(store.location, 'run-x.json'), 'utf8');
      expect(JSON.parse(text)).toMatchObject({ round, i: 24 });
    }
    expect(readdirSync(store.location).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('files 0600 in a 0700 directory', async () => {
    const store = new FileStateStore(join(tmp(), 'state'));
    await store.put('deploy-x', { secret: 'y' });
    expect(statSync(store.location).mode & 0o777).toBe(0o700);
    expect(statSync(join(store.location, 'deploy-x.json')).mode & 0o777).toBe(0o600);
  });

  it('a damaged file: refused with its name, or (daemon) moved aside and the previous good copy used', async () => {
    const dir = tmp();
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {}, child: () => logger };
    const store = new FileStateStore(dir, { recover: true, logger });
    await store.put('run-x', { v: 1, n: 1 });
    await store.put('run-x', { v: 1, n: 2 });
    writeFileSync(join(dir, 'run-x.json'), '{"v":1,"n":2}\n}garbage');
    await expect(new FileStateStore(dir).get('run-x')).rejects.toThrow(/run-x.json is not valid JSON/);
    expect(await store.get('run-x')).toEqual({ v: 1, n: 1 });
    expect(warnings.join()).toMatch(/not valid JSON: moved aside to .*run-x\.json\.corrupt-.*previous good copy/);
    expect(readdirSync(dir).some((n) => n.startsWith('run-x.json.corrupt-'))).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'run-x.json'), 'utf8'))).toEqual({ v: 1, n: 1 });
  });

  it('valid JSON of the wrong shape is refused like a damaged file', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'run-x.json'), '[1,2,3]');
    const isObj = (v: unknown): v is { v: 1 } => typeof v === 'object' && v !== null && !Array.isArray(v);
    await expect(new FileStateStore(dir).get('run-x', isObj)).rejects.toThrow(/not the expected shape/);
    expect(await new FileStateStore(dir, { recover: true }).get('run-x', isObj)).toBeUndefined();
  });

  it('temp files of dead writers are removed at start; live writers are left alone', async () => {
    const dir = tmp();
    const dead = `.mappings.json.999999999.1700000000000.tmp`;
    const mine = `.mappings.json.${process.pid}.1-abcd.tmp`;
    writeFileSync(join(dir, dead), '');
    writeFileSync(join(dir, mine), '');
    expect(await new FileStateStore(dir).removeStaleTemps()).toEqual([dead]);
    expect(readdirSync(dir)).toEqual([mine]);
  });

  it('securePrivateDirs: looser modes are fixed and reported', async () => {
    const dir = tmp();
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'deploy-x.json'), '{}', { mode: 0o644 });
    chmodSync(join(dir, 'deploy-x.json'), 0o644);
    const fixes = await securePrivateDirs([dir]);
    expect(fixes).toEqual([`${dir} was mode 755, now 700`, `${join(dir, 'deploy-x.json')} was mode 644, now 600`]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(await securePrivateDirs([dir])).toEqual([]);
  });
});
