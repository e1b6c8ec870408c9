import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, elastic } from '../support/cli.js';
import { requireDocker } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { ownedStateDir } from '../support/owned.js';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';

/**
 * Issue 18: `map-image --watch` keeps its 32,749-slot Maglev map in memory and no longer reads it
 * back at every 30 s resync; an `nft monitor` child reports changes. Drift made by another process
 * (an element deleted, a chain flushed by hand) is still repaired, at once instead of at the next
 * resync; the watcher's own transactions are not taken for drift; and the monitor does not outlive
 * a watcher killed with -9. No traffic: static backends in 198.19.64.0/24 that nothing answers.
 */
const stateDir = ownedStateDir('mapimg-drift-state-');
const table = namespaceFor(stateDir).nftTable;
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-drift-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const PORT = 26210;
const MAP = `spread_tcp_${PORT}`;
let child: ResultPromise | undefined;

const slotsProgrammed = async () => [...(await execa('nft', ['list', 'map', 'ip', table, MAP], { reject: false })).stdout.matchAll(/\b\d+ : 198\.19\.64\.\d+ \. 80\b/g)].length;
const svcRules = async () => (await execa('nft', ['list', 'chain', 'ip', table, `svc_tcp_${PORT}`], { reject: false })).stdout;
async function until(what: string, ok: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
/** Child pids of a process (all its threads). */
const childrenOf = (pid: number): number[] => {
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((t) => readFileSync(`${dir}/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
};
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

beforeAll(async () => {
  await requireDocker();
});

afterAll(async () => {
  if (child?.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  await elastic(['map-image', 'stop', '--all'], { env });
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

describe('map-image --watch: drift of the nft rules', () => {
  it('an element deleted or a chain flushed by another process is put back at once; our own changes are not drift; the monitor ends with the watcher', async () => {
    const backends = [1, 2, 3].flatMap((i) => ['--backend', `198.19.64.${i}:80`]);
    child = execa(process.execPath, [BIN, 'map-image', String(PORT), `mapimg-drift-none-${process.pid}:1`, '80', '--watch', '--dataplane', 'nft', '--spread', 'hash', '--debug', ...backends], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
    const err = new LineReader(child.stderr!);
    onTestFailed(() => console.error(err.lines.join('\n')));
    await err.next((l) => l.includes(`applied tcp-${PORT}: 3 backend(s)`), 'first apply', 30_000);
    expect(await slotsProgrammed()).toBe(32749);
    const drifts = () => err.lines.filter((l) => l.includes('another process changed our rules')).length;

    // Someone deletes two slots by hand: repaired well before the 30 s resync.
    await execa('nft', ['delete', 'element', 'ip', table, MAP, '{ 5, 6 }']);
    await until('the deleted slots to be put back', async () => (await slotsProgrammed()) === 32749, 10_000);
    expect(drifts()).toBeGreaterThanOrEqual(1);

    // Someone flushes the DNAT chain: the rule is back too.
    await execa('nft', ['flush', 'chain', 'ip', table, `svc_tcp_${PORT}`]);
    await until('the flushed rule to be put back', async () => /jhash .* map @spread_tcp_26210/.test(await svcRules()), 10_000);

    // The repairs were our own transactions: they are not taken for drift (no resync loop).
    const seen = drifts();
    await new Promise((r) => setTimeout(r, 2_000));
    expect(drifts(), err.lines.filter((l) => l.includes("another process")).slice(-4).join("\n")).toBe(seen);

    // kill -9: the nft monitor (and the shell around it) end with the watcher.
    const kids = childrenOf(child.pid!);
    const grandkids = kids.flatMap(childrenOf);
    expect(kids.length + grandkids.length).toBeGreaterThanOrEqual(3); // nft -i, sh, nft monitor (+ cat)
    process.kill(child.pid!, 'SIGKILL');
    await child;
    await until('the watcher\'s children to end', async () => [...kids, ...grandkids].every((p) => !alive(p)), 10_000);
  }, 90_000);
});
