import { describe, expect, it } from 'vitest';
import { decide, initialScalerState, needFor, type AutoscaleSpec, type LoadSample, type ScalerState } from '../../src/engine/deploy/autoscale.js';

const spec: AutoscaleSpec = {
  min: 1,
  max: 10,
  metric: 'concurrency',
  target: 10,
  cpuFallback: 70,
  intervalMs: 1000,
  stableWindowMs: 10_000,
  panicWindowMs: 2_000,
  panicThreshold: 2,
  upCooldownMs: 3_000,
  downCooldownMs: 5_000,
  downDelayMs: 6_000,
};

/** A fake metrics source: in-flight requests per second of the run. */
function run(load: number[], start = 1, s: AutoscaleSpec = spec) {
  let state: ScalerState = initialScalerState;
  let replicas = start;
  const rows: string[] = [];
  load.forEach((value, t) => {
    const now = t * 1000;
    const sample: LoadSample = { at: now, metric: 'concurrency', value, need: needFor('concurrency', value, s.target, replicas), source: 'fake' };
    const r = decide(state, s, replicas, sample, now);
    state = r.state;
    if (r.decision.to !== replicas) rows.push(`t=${t}s ${replicas}->${r.decision.to} ${r.decision.mode}`);
    replicas = r.decision.to;
  });
  return { rows, replicas };
}

describe('autoscaler policy', () => {
  it('steady load at target: holds', () => {
    expect(run(Array(20).fill(10)).rows).toEqual([]);
  });

  it('a gradual rise scales up on the stable window, respecting the up cooldown', () => {
    const { rows } = run([10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30]);
    expect(rows[0]).toMatch(/^t=\d+s 1->2 stable$/);
    // between two scale-ups at least the up cooldown (3 s)
    const times = rows.map((r) => Number(/t=(\d+)s/.exec(r)![1]));
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(3);
    expect(run([10, 12, 14, 16, 18, 20, 22, 24, 26, 28, ...Array(20).fill(30)]).replicas).toBe(3);
  });

  it('a burst panics: scales up at once, and does not scale down during panic', () => {
    const { rows, replicas } = run([10, 10, 80, 80, 80, 0, 0, 0, 0]);
    expect(rows[0]).toMatch(/^t=2s 1->[4-8] panic$/);
    expect(replicas).toBe(8);
    // no step down while in panic (a stable window after the last panic)
    const counts = rows.map((r) => Number(/->(\d+)/.exec(r)![1]));
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
  });

  it('scales down only after the delay, and new traffic resets the delay', () => {
    const quiet = run([...Array(12).fill(50), ...Array(30).fill(0)], 5);
    const down = quiet.rows.find((r) => r.includes('5->'));
    expect(down).toBeDefined();
    const tDown = Number(/t=(\d+)s/.exec(down!)![1]);
    // the stable average must fall below 4 replicas' worth, then 6 s of delay
    expect(tDown).toBeGreaterThanOrEqual(12 + 6);

    const bumpy = run([...Array(12).fill(50), ...Array(6).fill(0), 100, 100, ...Array(30).fill(0)], 5);
    const tBumpy = Number(/t=(\d+)s/.exec(bumpy.rows.find((r) => r.includes('5->'))!)![1]);
    expect(tBumpy).toBeGreaterThan(tDown);
  });

  it('clamps to min/max, and holds without samples', () => {
    expect(decide(initialScalerState, spec, 0, null, 0).decision).toMatchObject({ from: 0, to: 1 });
    expect(decide(initialScalerState, spec, 12, null, 0).decision).toMatchObject({ from: 12, to: 10 });
    expect(decide(initialScalerState, spec, 3, null, 0).decision).toMatchObject({ to: 3, reason: 'no load metric yet: holding' });
    expect(run(Array(20).fill(1000)).replicas).toBe(10);
  });

  it('every decision carries a reason', () => {
    let state = initialScalerState;
    for (let t = 0; t < 15; t++) {
      const r = decide(state, spec, 2, { at: t * 1000, metric: 'concurrency', value: 5, need: 0.5, source: 'fake' }, t * 1000);
      state = r.state;
      expect(r.decision.reason.length).toBeGreaterThan(5);
    }
  });

  it('needFor: concurrency is absolute, wait and cpu are proportional to current replicas', () => {
    expect(needFor('concurrency', 25, 10, 4)).toBe(2.5);
    expect(needFor('cpu', 140, 70, 3)).toBe(6);
    expect(needFor('wait', 25, 50, 4)).toBe(2);
  });
});
