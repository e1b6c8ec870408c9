/**
 * The autoscaler policy, pure (time comes in as `now`): samples of load in, a replica count and
 * the reason out. Modelled on Knative's KPA:
 * - load is averaged over a stable window (default 60 s) and a short panic window (6 s);
 * - when the panic window asks for `panicThreshold` x the current replicas, it scales up at once
 *   and does not scale down until a stable window has passed without panic;
 * - scale-ups and scale-downs each have a cooldown; a scale-down also waits `downDelayMs` of
 *   continuously lower demand, and new traffic (the recommendation rising) restarts that delay.
 *
 * Load is kept in "replicas needed" units so metrics of different kinds can be averaged:
 * concurrency: (active + queued) / target per replica; wait and cpu: current x observed / target.
 */
export type Metric = 'concurrency' | 'wait' | 'cpu';

export interface AutoscaleSpec {
  readonly min: number;
  readonly max: number;
  readonly metric: Metric;
  /** Per replica: in-flight requests (concurrency), queue wait p50 ms (wait), or CPU percent. */
  readonly target: number;
  /** CPU percent target used when no load-balancer metric is available. */
  readonly cpuFallback: number;
  readonly intervalMs: number;
  readonly stableWindowMs: number;
  readonly panicWindowMs: number;
  readonly panicThreshold: number;
  readonly upCooldownMs: number;
  readonly downCooldownMs: number;
  readonly downDelayMs: number;
}

export const DEFAULT_AUTOSCALE: Omit<AutoscaleSpec, 'min' | 'max' | 'target'> = {
  metric: 'concurrency',
  cpuFallback: 70,
  intervalMs: 2_000,
  stableWindowMs: 60_000,
  panicWindowMs: 6_000,
  panicThreshold: 2,
  upCooldownMs: 0,
  downCooldownMs: 30_000,
  downDelayMs: 60_000,
};

export interface LoadSample {
  readonly at: number;
  readonly metric: Metric;
  /** The raw reading (requests in flight, wait ms, CPU %), for logs. */
  readonly value: number;
  /** Replicas this reading needs. */
  readonly need: number;
  readonly source: string;
}

export interface ScalerState {
  readonly samples: readonly LoadSample[];
  readonly lastScaleAt: number | null;
  readonly belowSince: number | null;
  readonly panicUntil: number | null;
  readonly lastRecommended: number | null;
}

export const initialScalerState: ScalerState = { samples: [], lastScaleAt: null, belowSince: null, panicUntil: null, lastRecommended: null };

export interface Decision {
  readonly at: number;
  readonly from: number;
  readonly to: number;
  readonly mode: 'stable' | 'panic';
  readonly reason: string;
  readonly load?: number;
}

/** Replicas a reading needs, in the metric's own terms. */
export function needFor(metric: Metric, value: number, target: number, current: number): number {
  if (!(target > 0) || !(value >= 0)) return current;
  if (metric === 'concurrency') return value / target;
  return Math.max(current, 1) * (value / target);
}

const avg = (xs: readonly LoadSample[]) => (xs.length ? xs.reduce((s, x) => s + x.need, 0) / xs.length : 0);
const ceil = (x: number) => Math.ceil(x - 1e-9);
const secs = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

export function decide(prev: ScalerState, spec: AutoscaleSpec, current: number, sample: LoadSample | null, now: number): { state: ScalerState; decision: Decision } {
  const clamp = (n: number) => Math.min(spec.max, Math.max(spec.min, n));
  const samples = [...prev.samples, ...(sample ? [sample] : [])].filter((s) => now - s.at <= spec.stableWindowMs);
  const base = { ...prev, samples };
  const out = (state: ScalerState, to: number, mode: Decision['mode'], reason: string, load?: number) => ({
    state: to !== current ? { ...state, lastScaleAt: now, belowSince: null } : state,
    decision: { at: now, from: current, to, mode, reason, load: load === undefined ? undefined : Math.round(load * 100) / 100 },
  });

  if (current < spec.min || current > spec.max) return out(base, clamp(current), 'stable', `outside ${spec.min}..${spec.max} replicas`);
  if (samples.length === 0) return out({ ...base, lastRecommended: null }, current, 'stable', 'no load metric yet: holding');

  const stableNeed = avg(samples);
  const panicNeed = avg(samples.filter((s) => now - s.at <= spec.panicWindowMs));
  const stableRec = clamp(ceil(stableNeed));
  const panicRec = clamp(ceil(panicNeed));
  let panicUntil = prev.panicUntil;
  if (panicRec > current && panicNeed >= spec.panicThreshold * Math.max(current, 1)) panicUntil = now + spec.stableWindowMs;
  const inPanic = panicUntil !== null && now < panicUntil;
  const rec = inPanic ? Math.max(panicRec, current) : stableRec;
  const next: ScalerState = { ...base, panicUntil: inPanic ? panicUntil : null, lastRecommended: rec };

  if (inPanic) {
    if (rec > current) return out(next, rec, 'panic', `panic: load over ${secs(spec.panicWindowMs)} needs ${panicNeed.toFixed(1)} replicas (>= ${spec.panicThreshold}x ${current})`, panicNeed);
    return out(next, current, 'panic', `panic mode until ${secs(panicUntil! - now)} from now: no scale down`, panicNeed);
  }
  if (rec > current) {
    const wait = prev.lastScaleAt === null ? 0 : spec.upCooldownMs - (now - prev.lastScaleAt);
    if (wait > 0) return out({ ...next, belowSince: null }, current, 'stable', `wants ${rec}: scale-up cooldown, ${secs(wait)} left`, stableNeed);
    return out(next, rec, 'stable', `load over ${secs(spec.stableWindowMs)} needs ${stableNeed.toFixed(1)} replicas`, stableNeed);
  }
  if (rec < current) {
    // New traffic (the recommendation rising) restarts the scale-down delay.
    const rising = prev.lastRecommended !== null && rec > prev.lastRecommended;
    const belowSince = prev.belowSince === null || rising ? now : prev.belowSince;
    const held = { ...next, belowSince };
    const delayLeft = spec.downDelayMs - (now - belowSince);
    if (delayLeft > 0) return out(held, current, 'stable', `wants ${rec}: scale-down delay, ${secs(delayLeft)} left${rising ? ' (reset by new traffic)' : ''}`, stableNeed);
    const coolLeft = prev.lastScaleAt === null ? 0 : spec.downCooldownMs - (now - prev.lastScaleAt);
    if (coolLeft > 0) return out(held, current, 'stable', `wants ${rec}: scale-down cooldown, ${secs(coolLeft)} left`, stableNeed);
    return out(held, rec, 'stable', `load below ${current} replicas for ${secs(now - belowSince)}: needs ${stableNeed.toFixed(1)}`, stableNeed);
  }
  return out({ ...next, belowSince: null }, current, 'stable', `at target: needs ${stableNeed.toFixed(1)} replicas`, stableNeed);
}
