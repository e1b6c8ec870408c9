/**
 * deploy benchmarks (not part of `npm test`): wall time of a cold deploy and of rolling updates of
 * 10 replicas with several surge/unavailable budgets against the real dockerd, and the pure
 * planner's cost on a 1,000-replica service. Usage: npx tsx bench/deploy/rollout.ts [replicas]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { deployRm, deployUp } from '../../src/engine/deploy.js';
import { buildSpec } from '../../src/engine/deploy/options.js';
import { planStep, type Replica } from '../../src/engine/deploy/plan.js';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';
import { percentile } from '../stats.js';

const N = Number(process.argv[2] ?? 10);
const dir = await mkdtemp(join(tmpdir(), 'elastic-bench-deploy-'));
const ctx = { store: new FileStateStore(join(dir, 'state')), runDir: join(dir, 'run') };
const svc = `dplbench${process.pid % 10000}`;
const base = { image: 'elastic-test/web:1', name: svc, port: '80', replicas: N, 'min-healthy': '500ms', 'stop-timeout': 1, 'drain-timeout': '1s' };

async function timed(label: string, extra: Record<string, unknown>) {
  const t0 = performance.now();
  const r = await deployUp(buildSpec({ ...base, ...extra }), ctx);
  const ms = performance.now() - t0;
  console.log(`${label.padEnd(44)} ${(ms / 1000).toFixed(2)} s  (created ${r.created}, removed ${r.removed})`);
}

try {
  await timed(`cold deploy, ${N} replicas (TCP gate, 500 ms)`, { env: ['V=0'] });
  await timed(`rolling ${N}: surge 1, unavailable 0 (default)`, { env: ['V=1'] });
  await timed(`rolling ${N}: surge 3, unavailable 0`, { env: ['V=2'], 'max-surge': '3' });
  await timed(`rolling ${N}: surge 25%, unavailable 25%`, { env: ['V=3'], 'max-surge': '25%', 'max-unavailable': '25%' });
  await timed(`rolling ${N}: surge 100% (blue/green)`, { env: ['V=4'], 'max-surge': '100%' });
} finally {
  await deployRm(svc, ctx).catch((e) => console.error(String(e)));
  await rm(dir, { recursive: true, force: true });
}

// The planner alone: one step on a 1,000-replica service mid-rollout (500 old, 500 new ready).
const replicas: Replica[] = [];
for (let i = 0; i < 1000; i++) replicas.push({ id: `c${i}`, name: `c${i}`, revision: i < 500 ? 'aaaaaaaaaaaa-11111111' : 'bbbbbbbbbbbb-22222222', index: (i % 500) + 1, state: 'running', health: 'none', created: String(i) });
const ready = new Set(replicas.slice(500).map((r) => r.id));
const samples: number[] = [];
for (let i = 0; i < 200; i++) {
  const t0 = performance.now();
  planStep(replicas, { revision: 'bbbbbbbbbbbb-22222222', replicas: 1000, surge: 100, unavailable: 0 }, { ready, failed: new Set() });
  samples.push(performance.now() - t0);
}
console.log(`planStep, 1000 replicas mid-rollout: p50 ${percentile(samples, 50).toFixed(2)} ms, p99 ${percentile(samples, 99).toFixed(2)} ms`);
