import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NftSession } from '../../src/engine/dataplane/nft-session.js';
import { applyTransaction } from '../../src/engine/dataplane/exec.js';
import { MappingsApplier } from '../../src/engine/dataplane/apply.js';
import { upsertMapping } from '../../src/engine/map-image.js';
import { FileStateStore, type StateStore } from '../../src/engine/runtime/state-store.js';

/**
 * The long-lived `nft -i` session against the real nft. Everything happens in a table of the
 * test's own with no base chain (no hook: it sees no packet), deleted afterwards.
 */
const table = `elastic_t${randomBytes(4).toString('hex')}`;
const T = `ip ${table}`;
const sessions: NftSession[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'elastic-nftsess-'));
const session = (opts: ConstructorParameters<typeof NftSession>[0] = {}) => {
  const s = new NftSession(opts);
  sessions.push(s);
  return s;
};
const nftJson = async () => JSON.parse((await execa('nft', ['-j', 'list', 'table', 'ip', table])).stdout) as { nftables: Array<Record<string, { name?: string; elem?: unknown[] }>> };
const elements = async (set: string) => (await nftJson()).nftables.find((o) => o.set?.name === set)?.set?.elem ?? [];

afterAll(async () => {
  for (const s of sessions) s.close();
  await execa('nft', ['delete', 'table', 'ip', table], { reject: false });
  rmSync(tmp, { recursive: true, force: true });
});

describe('NftSession (a long-lived nft -i)', () => {
  it('commits a transaction and reports nothing', async () => {
    const s = session();
    expect(await s.apply(`add table ${T}\nadd chain ${T} c\nadd set ${T} s { type ipv4_addr; }\nadd element ${T} s { 198.18.7.1 }\n`)).toBe('');
    expect(await elements('s')).toEqual(['198.18.7.1']);
    expect(s.pid).toBeGreaterThan(0);
    // Its own process group: a Ctrl-C at elastic's terminal must not reach it.
    const pgid = async (pid: number) => Number((await execa('ps', ['-o', 'pgid=', '-p', String(pid)])).stdout.trim());
    expect(await pgid(s.pid!)).toBe(s.pid);
    expect(await pgid(process.pid)).not.toBe(s.pid);
  });

  it('a refused transaction changes nothing and returns nft\'s error naming the line', async () => {
    const s = session();
    const out = await s.apply(`add element ${T} s { 198.18.7.2 }\nadd rule ${T} nochain counter\n`);
    expect(out).toMatch(/tx\.nft:2:\d+-\d+: Error: .*No such file or directory/);
    expect(await elements('s')).toEqual(['198.18.7.1']); // all or nothing
    await expect(applyTransaction('nft', `add rule ${T} nochain counter\n`, { nft: s })).rejects.toThrow(/refused the nft transaction at line 1 \(add rule .* nochain counter\)/);
  });

  it('keeps every answer with its own transaction (40 alternating good and bad)', async () => {
    const s = session();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => s.apply(i % 2 ? `add rule ${T} nochain${i} counter\n` : `add element ${T} s { 198.18.8.${i + 1} }\n`)),
    );
    results.forEach((out, i) => (i % 2 ? expect(out).toMatch(new RegExp(`nochain${i} counter`)) : expect(out).toBe('')));
    expect((await elements('s')).length).toBe(21);
  });

  it('lists a table as JSON, a missing one as null, and refuses a name it could not quote', async () => {
    const s = session();
    const text = await s.listTable(table);
    expect(typeof text).toBe('string');
    expect(JSON.parse(text as string).nftables.some((o: { set?: { name: string } }) => o.set?.name === 's')).toBe(true);
    expect(await s.listTable(`${table}_missing`)).toBeNull();
    expect(await s.listTable('x; flush ruleset')).toBe(false);
  });

  it('starts a new nft when its nft was killed, and sees changes made by others', async () => {
    const s = session();
    expect(await s.apply(`add element ${T} s { 198.18.9.1 }\n`)).toBe('');
    const pid = s.pid!;
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    await execa('nft', ['add', 'chain', 'ip', table, 'made_by_other']);
    expect(await s.apply(`add rule ${T} made_by_other counter\n`)).toBe('');
    expect(s.pid).not.toBe(pid);
  });

  it('an nft without its interactive CLI: apply says false, and applyTransaction uses nft -f', async () => {
    const bin = join(tmp, 'bin');
    execa('mkdir', ['-p', bin]);
    await new Promise((r) => setTimeout(r, 50));
    const real = (await execa('sh', ['-c', 'command -v nft'])).stdout.trim();
    writeFileSync(join(bin, 'nft'), `#!/bin/sh\nfor a in "$@"; do [ "$a" = -i ] && { echo "Error: interactive CLI not supported in this build" >&2; exit 1; }; done\nexec ${real} "$@"\n`);
    chmodSync(join(bin, 'nft'), 0o755);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const s = session({ env });
    expect(await s.apply(`add element ${T} s { 198.18.9.2 }\n`)).toBe(false);
    await applyTransaction('nft', `add element ${T} s { 198.18.9.3 }\n`, { env, nft: s });
    expect(await elements('s')).toEqual(expect.arrayContaining(['198.18.9.3']));
    expect(await elements('s')).not.toContain('198.18.9.2');
  });
});

describe('MappingsApplier: the state write runs beside the kernel read and the plan', () => {
  it('a failed state write applies nothing and is the error reported', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'elastic-applier-'));
    const files = new FileStateStore(dir);
    const failing: StateStore = { location: files.location, get: (k) => files.get(k), delete: (k) => files.delete(k), keys: () => files.keys(), put: async () => Promise.reject(new Error('disk full')) };
    const applier = new MappingsApplier({ store: failing });
    try {
      const spec = { id: 'tcp-18399', protocol: 'tcp' as const, port: 18399, image: 'x', containerPort: 80, staticBackends: [], dataplane: 'nft' as const, created: 'now' };
      await expect(applier.update((s) => upsertMapping(s, spec, [{ id: 'a', name: 'a', address: '198.18.9.9', port: 80 }]))).rejects.toThrow('disk full');
      expect((await execa('nft', ['list', 'table', 'ip', applier.ns.nftTable], { reject: false })).exitCode).not.toBe(0); // no table: nothing applied
    } finally {
      applier.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
