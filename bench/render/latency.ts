/**
 * Backend change -> HAProxy serving the new backend. Each iteration replaces the only backend
 * (A -> B -> A ...) and measures, from the moment render is handed the new set:
 *   apply  the runtime API / reload part alone (what render reports as the apply time)
 *   sync   the whole pass: render, validate (haproxy -c), atomic swap, apply, verify
 *   served until the first GET through HAProxy answers from the new backend
 * for the runtime path (membership only) and the reload path (a structural change each time).
 * Usage: npx tsx bench/render/latency.ts [iterations=50]
 */
import { percentile } from '../stats.js';
import { world } from './common.js';

const N = Number(process.argv[2] ?? 50);
const FRONT = 18450;
const PORTS = [18480, 18481];

async function get(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${FRONT}/id`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(2000) });
  return (await res.text()).trim();
}

const w = await world('benchlat', FRONT, PORTS);
try {
  await (await w.renderer()).sync({ web: [w.backend(PORTS[0]!)] });
  for (const path of ['runtime', 'reload'] as const) {
    const apply: number[] = [];
    const sync: number[] = [];
    const served: number[] = [];
    for (let i = 0; i < N; i++) {
      const port = PORTS[(i + 1) % 2]!;
      const renderer = await w.renderer(path === 'reload' ? { checkMs: 1000 + (i % 2) * 100 } : {});
      const t0 = performance.now();
      let t1 = 0;
      const pass = renderer.sync({ web: [w.backend(port)] }).then((r) => ((t1 = performance.now()), r));
      // Poll through HAProxy while the pass runs: "served" is the first answer from the new backend.
      while ((await get()) !== `b${port}`) if (performance.now() - t0 > 5000) throw new Error('not served in 5 s');
      const t2 = performance.now();
      const r = await pass;
      if (r.action !== path) throw new Error(`expected ${path}, got ${r.action} (${r.reason})`);
      apply.push(renderer.counters.lastApply?.ms ?? NaN);
      sync.push(t1 - t0);
      served.push(t2 - t0);
    }
    const f = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(1)} ms, p95 ${percentile(xs, 95).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
    console.log(`${path.padEnd(7)} n=${N}  apply: ${f(apply)} | sync: ${f(sync)} | change->served: ${f(served)}`);
  }
} finally {
  await w.close();
}
