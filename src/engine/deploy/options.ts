import { ExitCode, UserError } from '../errors.js';
import { parsePort } from '../model/validate.js';
import { parseLabels } from '../discovery/selector.js';
import { DEFAULT_AUTOSCALE, type AutoscaleSpec, type Metric } from './autoscale.js';
import {
  DEFAULT_HEALTH_TIMING,
  DEFAULT_ROLLOUT,
  checkBudget,
  checkReplicas,
  checkService,
  parseCpus,
  parseDuration,
  parseEnv,
  parseHealthGate,
  parseMemory,
  parseUserLabels,
  type DeploySpec,
} from './spec.js';

/**
 * Operator input (flag values, as strings) -> a checked DeploySpec and AutoscaleSpec. Kept out
 * of the command so it is testable as a table and the command stays thin.
 */
export interface DeployInput {
  image: string;
  name: string;
  replicas?: number;
  port?: string;
  env?: string[];
  label?: string[];
  network?: string;
  cmd?: string;
  memory?: string;
  cpus?: string;
  'health-cmd'?: string;
  'health-http'?: string;
  'health-tcp'?: boolean;
  'no-health'?: boolean;
  'health-interval'?: string;
  'health-timeout'?: string;
  'health-retries'?: number;
  'health-start-period'?: string;
  'min-healthy'?: string;
  'health-deadline'?: string;
  'max-surge'?: string;
  'max-unavailable'?: string;
  'failure-threshold'?: number;
  'drain-timeout'?: string;
  'stop-timeout'?: number;
  'autoscale-min'?: number;
  'autoscale-max'?: number;
  'autoscale-metric'?: string;
  'autoscale-target'?: number;
  'autoscale-interval'?: string;
  'stable-window'?: string;
  'panic-window'?: string;
  'panic-threshold'?: number;
  'scale-up-cooldown'?: string;
  'scale-down-cooldown'?: string;
  'scale-down-delay'?: string;
  'cpu-fallback'?: number;
}

const dur = (v: string | undefined, flag: string, dflt: number) => (v === undefined ? dflt : parseDuration(v, flag));

export function buildSpec(f: DeployInput): DeploySpec {
  const service = checkService(f.name);
  if (!f.image || f.image.length > 256 || /\s/.test(f.image)) throw new UserError('invalid IMAGE', 'pass an image reference such as web:1, or an image ID', ExitCode.usage);
  const replicas = checkReplicas(f.replicas ?? f['autoscale-min'] ?? 1);
  const health = parseHealthGate({ cmd: f['health-cmd'], http: f['health-http'], tcp: f['health-tcp'], none: f['no-health'] });
  const threshold = f['failure-threshold'] ?? DEFAULT_ROLLOUT.failureThreshold;
  if (!Number.isInteger(threshold) || threshold < 1) throw new UserError('--failure-threshold must be 1 or more', 'pass --failure-threshold 2', ExitCode.usage);
  return {
    service,
    replicas,
    container: {
      image: f.image,
      port: f.port === undefined ? undefined : parsePort(f.port, '--port'),
      env: parseEnv(f.env),
      labels: parseUserLabels(parseLabels(f.label, '--label')),
      network: f.network,
      cmd: f.cmd === undefined ? undefined : ['/bin/sh', '-c', f.cmd],
      memoryBytes: f.memory === undefined ? undefined : parseMemory(f.memory),
      cpus: f.cpus === undefined ? undefined : parseCpus(f.cpus),
      health,
      healthTiming: {
        intervalMs: dur(f['health-interval'], '--health-interval', DEFAULT_HEALTH_TIMING.intervalMs),
        timeoutMs: dur(f['health-timeout'], '--health-timeout', DEFAULT_HEALTH_TIMING.timeoutMs),
        retries: f['health-retries'] ?? DEFAULT_HEALTH_TIMING.retries,
        startPeriodMs: dur(f['health-start-period'], '--health-start-period', DEFAULT_HEALTH_TIMING.startPeriodMs),
      },
    },
    rollout: {
      maxSurge: checkBudget(f['max-surge'] ?? DEFAULT_ROLLOUT.maxSurge, '--max-surge'),
      maxUnavailable: checkBudget(f['max-unavailable'] ?? DEFAULT_ROLLOUT.maxUnavailable, '--max-unavailable'),
      minHealthyMs: dur(f['min-healthy'], '--min-healthy', DEFAULT_ROLLOUT.minHealthyMs),
      deadlineMs: dur(f['health-deadline'], '--health-deadline', DEFAULT_ROLLOUT.deadlineMs),
      failureThreshold: threshold,
      drainTimeoutMs: dur(f['drain-timeout'], '--drain-timeout', DEFAULT_ROLLOUT.drainTimeoutMs),
      stopTimeoutS: f['stop-timeout'] ?? DEFAULT_ROLLOUT.stopTimeoutS,
    },
  };
}

/** Autoscaling is on when --autoscale-max is given. */
export function buildAutoscale(f: DeployInput): AutoscaleSpec | undefined {
  const given = ['autoscale-min', 'autoscale-metric', 'autoscale-target', 'stable-window', 'panic-window', 'scale-down-delay'].some((k) => f[k as keyof DeployInput] !== undefined);
  if (f['autoscale-max'] === undefined) {
    if (given) throw new UserError('autoscaling needs --autoscale-max', 'pass --autoscale-min N --autoscale-max M --autoscale-target T', ExitCode.usage);
    return undefined;
  }
  const min = checkReplicas(f['autoscale-min'] ?? 1, '--autoscale-min');
  const max = checkReplicas(f['autoscale-max'], '--autoscale-max');
  if (max < min || max === 0) throw new UserError(`--autoscale-max ${max} is below --autoscale-min ${min}`, 'pass a max of at least the min (and at least 1)', ExitCode.usage);
  const metric = (f['autoscale-metric'] ?? DEFAULT_AUTOSCALE.metric) as Metric;
  if (!['concurrency', 'wait', 'cpu'].includes(metric)) throw new UserError(`invalid --autoscale-metric "${String(metric).slice(0, 20)}"`, 'use concurrency, wait or cpu', ExitCode.usage);
  const target = f['autoscale-target'] ?? (metric === 'concurrency' ? 10 : metric === 'wait' ? 50 : 70);
  if (!(target > 0)) throw new UserError('--autoscale-target must be above 0', 'pass e.g. --autoscale-target 10', ExitCode.usage);
  const d = DEFAULT_AUTOSCALE;
  const spec: AutoscaleSpec = {
    min,
    max,
    metric,
    target,
    cpuFallback: f['cpu-fallback'] ?? d.cpuFallback,
    intervalMs: dur(f['autoscale-interval'], '--autoscale-interval', d.intervalMs),
    stableWindowMs: dur(f['stable-window'], '--stable-window', d.stableWindowMs),
    panicWindowMs: dur(f['panic-window'], '--panic-window', d.panicWindowMs),
    panicThreshold: f['panic-threshold'] ?? d.panicThreshold,
    upCooldownMs: dur(f['scale-up-cooldown'], '--scale-up-cooldown', d.upCooldownMs),
    downCooldownMs: dur(f['scale-down-cooldown'], '--scale-down-cooldown', d.downCooldownMs),
    downDelayMs: dur(f['scale-down-delay'], '--scale-down-delay', d.downDelayMs),
  };
  if (spec.panicWindowMs > spec.stableWindowMs) throw new UserError('--panic-window is longer than --stable-window', 'the panic window is the short one (e.g. 6s vs 60s)', ExitCode.usage);
  return spec;
}
