/**
 * Benchmark: programming a mapping of N backends, from the engine call to the kernel, and adding
 * one backend to it; beside it the same rules loaded the old way (one `iptables` process per rule).
 * Run inside a fresh network namespace so the host's tables are not touched (run.sh does it):
 *
 *   [SPREAD=hash] ip netns exec mapimg-bp npx tsx bench/map-image/program.ts nft|iptables [N=1000] [adds=30] [skip-old-way]
 *
 * As `elastic map-image` does, the data plane is detected first (one `nft list tables` or
 * `iptables-save`) and the nft session started while the backends are discovered (here: 20 ms
 * stand in for the Docker list); the clock starts at the engine call after that. `programMs` is that first call
 * in the process (what a one-shot command pays); `programRepeatMs` the median of PROGRAM_ROUNDS
 * more (remove, program again: a daemon adding a mapping). `resyncMs`: a `--watch` resync with
 * nothing changed, `full` (reads the kernel back) and `light` (from memory), p50 of 3.
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MappingsApplier } from '../../src/engine/dataplane/apply.js';
import { detectDataplane } from '../../src/engine/dataplane/exec.js';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';
import { removeMapping, upsertMapping } from '../../src/engine/map-image.js';
import { renderIptables } from '../../src/engine/dataplane/iptables.js';
import { toRuleMapping, type MappingBackend, type MappingSpec } from '../../src/engine/dataplane/model.js';
import { percentile } from '../stats.js';

const plane = (process.argv[2] ?? 'nft') as 'nft' | 'iptables';
const N = Number(process.argv[3] ?? 1000);
const ADDS = Number(process.argv[4] ?? 30);
// `skip-old-way`: leave out the one-process-per-rule comparison (it takes ~40 s under load).
const OLD_WAY = process.argv[5] !== 'skip-old-way';
const dir = mkdtempSync(join(tmpdir(), 'mapimg-bench-'));
const store = new FileStateStore(dir);
const applier = new MappingsApplier({ store });
// SPREAD=hash: the Maglev table (M slots written at first, ~M/N per added backend), else numgen random.
const spread = process.env.SPREAD === 'hash' ? 'hash' : 'random';
const spec: MappingSpec = { id: 'tcp-18390', protocol: 'tcp', port: 18390, image: 'bench', containerPort: 80, staticBackends: [], dataplane: plane, spread, created: new Date().toISOString() };
// 250 addresses x 4 ports: rule text only (a private namespace, no traffic), but a realistic
// hairpin set (one element per address) next to the 1,000-slot spread.
const backend = (i: number): MappingBackend => ({ id: `static:${i}`, name: `b${i}`, address: `198.19.3.${1 + (i % 250)}`, port: 20000 + i });
const set = (n: number) => Array.from({ length: n }, (_, i) => backend(i));

await detectDataplane(plane);
if (plane === 'nft') applier.warm(); // as the command does before it asks Docker for the backends
await new Promise((r) => setTimeout(r, 20)); // the command's discovery (a Docker list) takes longer than this
const t0 = performance.now();
const first = await applier.update((s) => upsertMapping(s, spec, set(N)));
const programMs = performance.now() - t0;

const adds: number[] = [];
const addPhases: Array<Readonly<Record<string, number>>> = [];
for (let i = 0; i < ADDS; i++) {
  const a = performance.now();
  const r = await applier.update((s) => upsertMapping(s, spec, set(N + 1)));
  adds.push(performance.now() - a);
  if (r.phases) addPhases.push(r.phases);
  await applier.update((s) => upsertMapping(s, spec, set(N)));
}
const round = (o: Readonly<Record<string, number>> | undefined) => (o ? Object.fromEntries(Object.entries(o).map(([k, v]) => [k, +v.toFixed(1)])) : undefined);
const medianPhases = addPhases.length
  ? Object.fromEntries(Object.keys(addPhases[0]!).map((k) => [k, +percentile(addPhases.map((p) => p[k] ?? 0), 50).toFixed(1)]))
  : undefined;
// A periodic resync of `--watch`: a full one reads the table back (what every resync did before
// the drift monitor); a light one (what it does now unless drift is suspected) plans from memory.
const resync = async (full: boolean) => {
  const a = performance.now();
  await applier.update((s) => upsertMapping(s, spec, set(N)), { full });
  return performance.now() - a;
};
const fullResyncs: number[] = [];
const lightResyncs: number[] = [];
for (let i = 0; i < 3; i++) {
  fullResyncs.push(await resync(true));
  lightResyncs.push(await resync(false));
}
await applier.update((s) => removeMapping(s, spec.id), { full: true });
const repeats: number[] = [];
const PROGRAM_ROUNDS = Number(process.env.PROGRAM_ROUNDS ?? 5);
for (let i = 0; i < PROGRAM_ROUNDS; i++) {
  const a = performance.now();
  await applier.update((s) => upsertMapping(s, spec, set(N)));
  repeats.push(performance.now() - a);
  await applier.update((s) => removeMapping(s, spec.id));
}
applier.close();

let oldWayMs: number | null = null;
if (plane === 'iptables' && OLD_WAY) {
  // The same rules, one process per chain and per rule (how Flaxton did it).
  const m = toRuleMapping({ spec: { ...spec, id: 'tcp-18391', port: 18391 }, backends: set(N), draining: [] });
  const rs = renderIptables([m], [], undefined);
  const split = (r: string) => [...r.matchAll(/"([^"]*)"|(\S+)/g)].map((x) => x[1] ?? x[2]!);
  const a = performance.now();
  for (const chain of rs.nat.keys()) await execa('iptables', ['-t', 'nat', '-N', chain]);
  for (const [chain, rules] of rs.nat) for (const r of rules) await execa('iptables', ['-t', 'nat', '-A', chain, ...split(r)]);
  oldWayMs = performance.now() - a;
  for (const chain of rs.nat.keys()) await execa('iptables', ['-t', 'nat', '-F', chain]);
  for (const chain of rs.nat.keys()) await execa('iptables', ['-t', 'nat', '-X', chain]);
}
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify({
    plane,
    spread,
    backends: N,
    programMs: +programMs.toFixed(1),
    programPhases: round(first.phases),
    programRepeatMs: repeats.length ? { p50: +percentile(repeats, 50).toFixed(1), max: +Math.max(...repeats).toFixed(1), n: repeats.length } : undefined,
    addOneMs: { p50: +percentile(adds, 50).toFixed(1), p95: +percentile(adds, 95).toFixed(1), n: adds.length },
    addOnePhasesP50: medianPhases,
    resyncMs: { full: +percentile(fullResyncs, 50).toFixed(1), light: +percentile(lightResyncs, 50).toFixed(1) },
    ...(oldWayMs !== null ? { oneProcessPerRuleMs: +oldWayMs.toFixed(0), ratio: +(oldWayMs / programMs).toFixed(0) } : {}),
  }),
);
