/**
 * The pure part of map-image's `--spread hash` (src/engine/dataplane/maglev.ts): for N backends,
 * the table size M used, the time to compute the table, and the fraction of slots (= of flows)
 * that change backend when one backend is removed or added (goal: <= 1/N + 1%), over several
 * choices of which backend goes. Kernel programming costs are measured separately (nft).
 *
 *   npx tsx bench/map-image/maglev.ts [N...]        (default 10 100 1000 10000)
 */
import { maglevTable, maglevTableSize, tableChanges, tableKeys } from '../../src/engine/dataplane/maglev.js';

const ns = process.argv.slice(2).map(Number).filter((n) => n > 0);
const backends = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `198.${18 + (i >= 65_000 ? 1 : 0)}.${Math.floor(i / 250) % 256}.${(i % 250) + 2}:80`, weight: 1 }));
console.log('| N | M | compute table | removed: slots changed (worst of 5) | added: slots changed (worst of 5) | goal 1/N + 1% |');
console.log('|---|---|---|---|---|---|');
for (const n of ns.length ? ns : [10, 100, 1000, 10000]) {
  const m = maglevTableSize(n);
  const set = backends(n);
  const t0 = performance.now();
  const before = tableKeys(maglevTable(set, m));
  const ms = performance.now() - t0;
  let removed = 0;
  let added = 0;
  for (const r of [0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 1]) {
    removed = Math.max(removed, tableChanges(before, tableKeys(maglevTable(set.filter((_, i) => i !== r), m))).length / m);
    added = Math.max(added, tableChanges(before, tableKeys(maglevTable([...set, { key: `198.19.255.${r % 250}:81`, weight: 1 }], m))).length / m);
  }
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(`| ${n} | ${m} | ${ms.toFixed(0)} ms | ${pct(removed)} | ${pct(added)} | ${pct(1 / n + 0.01)} |`);
}
