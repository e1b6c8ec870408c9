import { connect } from 'node:net';
import { request } from 'node:http';
import type { Backend, BackendSet, Health } from '../model/backend.js';
import { ExitCode, UserError } from '../errors.js';

/**
 * Active health checks, as HAProxy does them: a check every `intervalMs`, each bounded by
 * `timeoutMs`; `rise` consecutive successes make a backend healthy, `fall` failures unhealthy.
 * A new backend starts as `starting` and is not served until it rises (unless it was healthy
 * by its own Docker HEALTHCHECK and we have no verdict yet).
 */
export interface CheckSpec {
  readonly kind: 'tcp' | 'http';
  readonly path: string; // http only
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
}

/**
 * The documented range of every check number, [min, max], refused outside it (flags and config
 * alike): an interval past Node's timer limit (2^31-1 ms) fires after 1 ms, a probe flood.
 */
export const CHECK_RANGES = {
  intervalMs: [100, 3_600_000],
  timeoutMs: [10, 60_000],
  rise: [1, 100],
  fall: [1, 100],
} as const satisfies Record<string, readonly [number, number]>;

// (flags and config keys name these differently: say what the number is)
const NAME_OF = { intervalMs: 'check interval (ms)', timeoutMs: 'check timeout (ms)', rise: 'rise', fall: 'fall' } as const;

export function parseCheck(text: string, opts: Partial<Omit<CheckSpec, 'kind' | 'path'>> = {}): CheckSpec {
  const base = { intervalMs: opts.intervalMs ?? 2000, timeoutMs: opts.timeoutMs ?? 1000, rise: opts.rise ?? 2, fall: opts.fall ?? 3 };
  for (const k of Object.keys(CHECK_RANGES) as Array<keyof typeof CHECK_RANGES>) {
    const [min, max] = CHECK_RANGES[k];
    const v = base[k];
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new UserError(`${NAME_OF[k]} ${String(v).slice(0, 30)} is out of range`, `give a whole number from ${min} to ${max}`, ExitCode.usage);
    }
  }
  if (text === 'tcp') return { kind: 'tcp', path: '/', ...base };
  const m = /^http(?::(\/[\x21-\x7e]*))?$/.exec(text);
  if (m) return { kind: 'http', path: m[1] ?? '/', ...base };
  throw new UserError(`invalid --check "${text.slice(0, 60)}"`, 'use --check tcp, --check http, or --check http:/healthz', ExitCode.usage);
}

/** One probe: true when the backend answered in time (http: a 2xx or 3xx status). */
export function probe(b: Pick<Backend, 'address' | 'port'>, spec: CheckSpec): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => {
      cleanup();
      finish(false);
    }, spec.timeoutMs);
    let cleanup = () => {};
    if (spec.kind === 'tcp') {
      const s = connect({ host: b.address, port: b.port });
      cleanup = () => s.destroy();
      s.once('connect', () => {
        s.destroy();
        finish(true);
      });
      s.once('error', () => finish(false));
    } else {
      const req = request({ host: b.address, port: b.port, path: spec.path, method: 'GET', agent: false, headers: { 'user-agent': 'elastic-health/1', connection: 'close' } }, (res) => {
        res.resume();
        finish((res.statusCode ?? 500) < 400);
      });
      cleanup = () => req.destroy();
      req.once('error', () => finish(false));
      req.end();
    }
  });
}

interface Tracked {
  backend: Backend;
  health: Health;
  ok: number;
  bad: number;
  timer: NodeJS.Timeout | null;
}

/** A verdict carried across a reload or restart (valid only for the same address and port). */
export interface KnownHealth {
  readonly address: string;
  readonly port: number;
  readonly health: Health;
}

export class HealthChecker {
  private readonly tracked = new Map<string, Tracked>();
  private seeded: ReadonlyMap<string, KnownHealth> = new Map();
  private stopped = false;

  constructor(
    private readonly spec: CheckSpec,
    private readonly onChange: () => void,
    private readonly probeFn: typeof probe = probe,
  ) {}

  /** Track exactly this set: new backends start checking, gone ones stop. */
  setTargets(backends: BackendSet): void {
    const ids = new Set(backends.map((b) => b.id));
    for (const [id, t] of this.tracked) {
      if (!ids.has(id)) {
        if (t.timer) clearTimeout(t.timer);
        this.tracked.delete(id);
      }
    }
    for (const b of backends) {
      const t = this.tracked.get(b.id);
      if (t) {
        t.backend = b;
        continue;
      }
      const known = this.seeded.get(b.id);
      const health = known && known.address === b.address && known.port === b.port ? known.health : 'starting';
      const entry: Tracked = { backend: b, health, ok: health === 'healthy' ? this.spec.rise : 0, bad: health === 'unhealthy' ? this.spec.fall : 0, timer: null };
      this.tracked.set(b.id, entry);
      void this.run(entry);
    }
  }

  /**
   * Verdicts known from before (the previous pipeline of a reload, what was serving before a
   * restart): a backend starts from its verdict instead of `starting`; its checks go on.
   */
  seed(known: ReadonlyMap<string, KnownHealth>): void {
    this.seeded = known;
  }

  /** Every tracked backend's verdict now (to carry across a reload). */
  verdicts(): Map<string, KnownHealth> {
    return new Map([...this.tracked].map(([id, t]) => [id, { address: t.backend.address, port: t.backend.port, health: t.health }]));
  }

  /** Tracked backends still waiting for their first verdict. */
  pending(): number {
    return [...this.tracked.values()].filter((t) => t.health === 'starting').length;
  }

  /** The set with our verdicts applied; `includeUnhealthy` keeps failing ones (marked). */
  apply(backends: BackendSet, includeUnhealthy = false): BackendSet {
    const out: Backend[] = [];
    for (const b of backends) {
      const h = this.tracked.get(b.id)?.health ?? 'starting';
      if (!includeUnhealthy && h !== 'healthy') continue;
      out.push(h === b.health ? b : { ...b, health: h });
    }
    return out;
  }

  /** Probe every backend once, now (one-shot `discover --check`). */
  async checkOnce(backends: BackendSet): Promise<BackendSet> {
    const results = await Promise.all(backends.map((b) => this.probeFn(b, this.spec)));
    return backends.map((b, i) => ({ ...b, health: results[i] ? 'healthy' : 'unhealthy' }));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.tracked.values()) if (t.timer) clearTimeout(t.timer);
    this.tracked.clear();
  }

  private async run(t: Tracked): Promise<void> {
    if (this.stopped || this.tracked.get(t.backend.id) !== t) return;
    const ok = await this.probeFn(t.backend, this.spec);
    if (this.stopped || this.tracked.get(t.backend.id) !== t) return;
    const before = t.health;
    if (ok) {
      t.ok++;
      t.bad = 0;
      if (t.ok >= this.spec.rise) t.health = 'healthy';
    } else {
      t.bad++;
      t.ok = 0;
      if (t.bad >= this.spec.fall) t.health = 'unhealthy';
    }
    if (t.health !== before) this.onChange();
    t.timer = setTimeout(() => void this.run(t), this.spec.intervalMs);
    t.timer.unref();
  }
}
