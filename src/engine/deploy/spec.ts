import { createHash, randomBytes } from 'node:crypto';
import { ExitCode, UserError } from '../errors.js';
import { isIdent, isSafeText, printable } from '../model/validate.js';

/**
 * What a deploy asks for, as plain data. The part that defines a container (image, command, env,
 * labels, port, network, limits, health gate) is hashed into the revision; replicas, rollout
 * pacing and autoscaling are not (changing them never replaces a container).
 */
export type HealthGate =
  | { readonly kind: 'auto' } // the image's HEALTHCHECK if it has one, else TCP on --port, else "running"
  | { readonly kind: 'cmd'; readonly cmd: string } // a Docker Healthcheck (CMD-SHELL, inside the container)
  | { readonly kind: 'http'; readonly path: string } // GET http://<container ip>:<port><path>, probed by us
  | { readonly kind: 'tcp' }
  | { readonly kind: 'none' };

export interface HealthTiming {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly startPeriodMs: number;
}

export interface ContainerSpec {
  readonly image: string;
  readonly port?: number;
  readonly env: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly network?: string;
  readonly cmd?: readonly string[];
  readonly memoryBytes?: number;
  readonly cpus?: number;
  readonly health: HealthGate;
  readonly healthTiming: HealthTiming;
}

export interface RolloutParams {
  /** Integers or percentages of the replica count ("25%"). */
  readonly maxSurge: string;
  readonly maxUnavailable: string;
  /** A new replica must stay healthy this long before it counts. */
  readonly minHealthyMs: number;
  /** ... and must get there within this long after it starts. */
  readonly deadlineMs: number;
  /** Failed new replicas before the rollout is rolled back. */
  readonly failureThreshold: number;
  readonly drainTimeoutMs: number;
  readonly stopTimeoutS: number;
}

export interface DeploySpec {
  readonly service: string;
  readonly replicas: number;
  readonly container: ContainerSpec;
  readonly rollout: RolloutParams;
}

export const DEFAULT_ROLLOUT: RolloutParams = {
  maxSurge: '1',
  maxUnavailable: '0',
  minHealthyMs: 2_000,
  deadlineMs: 60_000,
  failureThreshold: 2,
  drainTimeoutMs: 30_000,
  stopTimeoutS: 10,
};

export const DEFAULT_HEALTH_TIMING: HealthTiming = { intervalMs: 2_000, timeoutMs: 2_000, retries: 3, startPeriodMs: 0 };

/** Labels on every container deploy creates (docs/ARCHITECTURE.md). */
export const LABEL = {
  managed: 'elastic.managed',
  service: 'elastic.service',
  revision: 'elastic.revision',
  replica: 'elastic.replica',
  /** The state directory's namespace (`default`, or 6 hex): whose `deploy status` lists it. */
  state: 'elastic.state',
} as const;

/** The hashed part, in a canonical form (sorted keys) so equal specs hash equally. */
export function specHash(c: ContainerSpec): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canon)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.keys(v as object).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => [k, canon((v as Record<string, unknown>)[k])]))
        : v;
  return createHash('sha256').update(JSON.stringify(canon(c))).digest('hex').slice(0, 8);
}

/** `<image id 12 hex>-<spec hash 8 hex>`. */
export function revisionOf(imageId: string, c: ContainerSpec): string {
  const hex = imageId.replace(/^sha256:/, '').slice(0, 12);
  return `${hex}-${specHash(c)}`;
}

export function isRevision(s: string): boolean {
  return /^[0-9a-f]{12}-[0-9a-f]{8}$/.test(s);
}

/** `<service>-<spec hash>-<random>`: readable in `docker ps`, never reused. */
export function containerName(service: string, revision: string): string {
  return `${service}-${revision.slice(13)}-${randomBytes(3).toString('hex')}`;
}

export function labelsFor(service: string, revision: string, replica: number, user: Readonly<Record<string, string>>): Record<string, string> {
  return { ...user, [LABEL.managed]: 'true', [LABEL.service]: service, [LABEL.revision]: revision, [LABEL.replica]: String(replica) };
}

// --- parsing of operator input --------------------------------------------------------------

const usage = (message: string, hint: string) => new UserError(message, hint, ExitCode.usage);

export function checkService(name: string): string {
  if (!isIdent(name) || name.length > 40) throw usage(`invalid service name "${printable(name, 60)}"`, 'use up to 40 letters, digits, ".", "_" and "-", starting with a letter or digit');
  return name;
}

export function checkReplicas(n: number, flag = '--replicas'): number {
  if (!Number.isInteger(n) || n < 0) throw usage(`${flag} must be a whole number of 0 or more (got ${printable(String(n), 20)})`, `pass ${flag} 3, or 0 to keep the service with no replica`);
  if (n > 1000) throw usage(`${flag} ${n} is more than elastic deploys on one host (1000)`, 'use fewer replicas');
  return n;
}

/** `500ms`, `10s`, `2m`, or a bare number of milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw usage(`invalid ${flag} "${printable(text, 30)}"`, 'write a duration such as 500ms, 10s or 2m');
  const n = Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 's' ? 1000 : 1);
  if (!Number.isFinite(n) || n > 24 * 3600_000) throw usage(`${flag} is too long`, 'use at most 24h');
  return Math.round(n);
}

/** `2` or `25%`; checked here, resolved against the replica count by `resolveBudget`. */
export function checkBudget(text: string, flag: string): string {
  if (!/^\d{1,4}%?$/.test(text) || (text.endsWith('%') && Number(text.slice(0, -1)) > 100)) throw usage(`invalid ${flag} "${printable(text, 20)}"`, 'use a count such as 1, or a percentage such as 25%');
  return text;
}

/** Surge rounds up and unavailable down (as Kubernetes does); both 0 would deadlock: surge 1. */
export function resolveBudget(r: Pick<RolloutParams, 'maxSurge' | 'maxUnavailable'>, replicas: number): { surge: number; unavailable: number } {
  const of = (t: string, up: boolean) => (t.endsWith('%') ? (up ? Math.ceil : Math.floor)((Number(t.slice(0, -1)) / 100) * replicas) : Number(t));
  const surge = of(r.maxSurge, true);
  const unavailable = Math.min(of(r.maxUnavailable, false), replicas);
  return surge === 0 && unavailable === 0 ? { surge: 1, unavailable: 0 } : { surge, unavailable };
}

export function parseEnv(values: readonly string[] | undefined): string[] {
  return (values ?? []).map((v) => {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*=/.test(v) || !isSafeText(v, 4096)) throw usage(`invalid --env "${printable(v, 40)}"`, 'write it as --env NAME=value (printable text)');
    return v;
  });
}

export function parseUserLabels(values: readonly { key: string; value: string }[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { key, value } of values) {
    if (key.startsWith('elastic.')) throw usage(`--label ${printable(key, 40)} is reserved`, 'labels starting with "elastic." are set by elastic itself');
    out[key] = value;
  }
  return out;
}

/** `512m`, `1g`, `1048576` -> bytes. */
export function parseMemory(text: string): number {
  const m = /^(\d+)([kmg]?)b?$/i.exec(text.trim());
  if (!m) throw usage(`invalid --memory "${printable(text, 20)}"`, 'write it as 256m or 1g');
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const bytes = Number(m[1]) * mult;
  if (bytes < 6 * 1024 ** 2) throw usage('--memory is below 6m, the least Docker accepts', 'raise --memory');
  return bytes;
}

export function parseCpus(text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n <= 0 || n > 1024) throw usage(`invalid --cpus "${printable(text, 20)}"`, 'write it as 0.5 or 2');
  return n;
}

export function parseHealthGate(opts: { cmd?: string; http?: string; tcp?: boolean; none?: boolean }): HealthGate {
  const given = [opts.cmd !== undefined, opts.http !== undefined, Boolean(opts.tcp), Boolean(opts.none)].filter(Boolean).length;
  if (given > 1) throw usage('choose one health gate', 'pass only one of --health-cmd, --health-http, --health-tcp, --no-health');
  if (opts.cmd !== undefined) {
    if (!opts.cmd.trim() || !isSafeText(opts.cmd, 1024)) throw usage('invalid --health-cmd', 'pass the command to run inside the container, e.g. --health-cmd "wget -q -O- localhost/health"');
    return { kind: 'cmd', cmd: opts.cmd };
  }
  if (opts.http !== undefined) {
    if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@/%?-]*$/.test(opts.http) || opts.http.length > 512) throw usage(`invalid --health-http "${printable(opts.http, 40)}"`, 'pass a path such as /healthz');
    return { kind: 'http', path: opts.http };
  }
  if (opts.tcp) return { kind: 'tcp' };
  if (opts.none) return { kind: 'none' };
  return { kind: 'auto' };
}

export function describeGate(g: HealthGate): string {
  switch (g.kind) {
    case 'cmd':
      return `health-cmd ${printable(g.cmd, 60)}`;
    case 'http':
      return `HTTP GET ${g.path}`;
    default:
      return g.kind;
  }
}
