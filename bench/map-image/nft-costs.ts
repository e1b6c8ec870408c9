/**
 * Where an nft sync's time goes at N backends: the floor of any `nft -f` (process + cache), the
 * add-one transaction the applier writes, and the reads a full sync makes. Medians of 9, in a
 * fresh network namespace (run.sh makes one):
 *
 *   ip netns exec mapimg-bp npx tsx bench/map-image/nft-costs.ts [N=1000]
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MappingsApplier } from '../../src/engine/dataplane/apply.js';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';
import { removeMapping, upsertMapping } from '../../src/engine/map-image.js';
import { toRuleMapping, type MappingBackend, type MappingSpec } from '../../src/engine/dataplane/model.js';
import { nftKernelFrom, planNft, renderNft } from '../../src/engine/dataplane/nft.js';
import { percentile } from '../stats.js';

const N = Number(process.argv[2] ?? 1000);
const spec: MappingSpec = { id: 'tcp-18392', protocol: 'tcp', port: 18392, image: 'bench', containerPort: 80, staticBackends: [], dataplane: 'nft', created: 'now' };
const backend = (i: number): MappingBackend => ({ id: `s${i}`, name: `b${i}`, address: `198.19.3.${1 + (i % 250)}`, port: 20000 + i });
const set = (n: number) => Array.from({ length: n }, (_, i) => backend(i));
const dir = mkdtempSync(join(tmpdir(), 'mapimg-costs-'));
const applier = new MappingsApplier({ store: new FileStateStore(dir) });
await applier.update((s) => upsertMapping(s, spec, set(N)));

const median = async (fn: () => Promise<unknown>) => {
  const xs: number[] = [];
  for (let i = 0; i < 9; i++) {
    const a = performance.now();
    await fn();
    xs.push(performance.now() - a);
  }
  return +percentile(xs, 50).toFixed(1);
};
const file = join(dir, 'tx.nft');
const nftFile = (text: string) => async () => {
  writeFileSync(file, text);
  await execa('nft', ['-f', file]);
};
const entry = (n: number) => ({ spec, backends: set(n), draining: [], updated: 'now' });
const at = renderNft([toRuleMapping(entry(N))]);
const plus = renderNft([toRuleMapping(entry(N + 1))], nftKernelFrom(at));
const table = applier.ns.nftTable; // the bench's temp state dir has its own namespace
const addOne = planNft(plus, nftKernelFrom(at), at, table);
const back = planNft(renderNft([toRuleMapping(entry(N))], nftKernelFrom(plus)), nftKernelFrom(plus), plus, table);
const costs = {
  spawnTrue: await median(() => execa('true')),
  nftNoop: await median(nftFile(`add table ip ${table}\n`)),
  nftAddOneAndBack: await median(async () => {
    await nftFile(addOne)();
    await nftFile(back)();
  }),
  nftListTableJson: await median(() => execa('nft', ['-j', 'list', 'table', 'ip', table])),
  iptablesSave: await median(() => execa('iptables-save', ['-c'])),
  renderAndPlan: await median(async () => planNft(renderNft([toRuleMapping(entry(N + 1))], nftKernelFrom(at)), nftKernelFrom(at), at, table)),
};
await applier.update((s) => removeMapping(s, spec.id), { full: true });
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ backends: N, addOneLines: addOne.trim().split('\n').length, msMedianOf9: costs }));
