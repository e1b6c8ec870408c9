import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Collector, collectRound, sleep } from './top/collector.js';
import type { DockerFallback } from './top/docker.js';
import { TopStore, type BackendRow, type ServiceRow, type SourceInfo, type TopState } from './top/store.js';
import type { Logger } from './runtime/logger.js';
import type { TopFleet } from './top/fleet.js';
import type { FleetReader } from './top/fleet-reader.js';
import { printable } from './model/validate.js';
import { ExitCode, UserError } from './errors.js';

/**
 * `top` as engine functions: one snapshot (`topOnce`), a live stream of states (`topWatch`), and
 * the live store + collector the Ink dashboard runs on (`startTop`). Everything is read through
 * the status-socket registry; Docker is listed only when no socket is there.
 */
export interface TopOptions {
  /** Status socket directory (default: the registry, ELASTIC_RUN_DIR). */
  dir?: string;
  intervalMs: number;
  /** Show local containers when nothing is configured; null: never talk to Docker. */
  docker: DockerFallback | null;
  logger?: Logger;
  /** `top --etcd --fleet`: the fleet read from the store every interval (the Hosts view). */
  fleet?: FleetReader;
}

/** The JSON shape of one `top --json` snapshot (and of each `--json --watch` line). */
export interface TopJson {
  readonly v: 1;
  readonly time: string;
  readonly intervalMs: number;
  readonly notice: string | null;
  readonly sources: ReadonlyArray<Omit<SourceInfo, 'lastSeen'> & { lastSeen: string }>;
  readonly services: ReadonlyArray<Omit<ServiceRow, 'key'>>;
  readonly backends: ReadonlyArray<Omit<BackendRow, 'key' | 'serviceKey'>>;
  readonly events: ReadonlyArray<{ time: string; source: string; type: string; message: string; service: string | null }>;
  /** The fleet (--etcd/--fleet, or the daemon watched is a fleet host); null otherwise. */
  readonly fleet: TopFleet | null;
}

const round = (n: number | null) => (n === null ? null : Math.round(n * 100) / 100);

export function topJson(state: TopState, intervalMs: number, maxEvents = 50): TopJson {
  return {
    v: 1,
    time: new Date(state.now).toISOString(),
    intervalMs,
    notice: state.notice,
    sources: state.sources.map((s) => ({ ...s, lastSeen: new Date(s.lastSeen).toISOString() })),
    services: state.services.map(({ key: _k, ...s }) => ({ ...s, rate: round(s.rate), bytesRate: round(s.bytesRate) })),
    backends: state.backends.map(({ key: _k, serviceKey: _s, ...b }) => ({ ...b, pktRate: round(b.pktRate), bytesRate: round(b.bytesRate), hitRate: round(b.hitRate) })),
    events: state.timeline.slice(-maxEvents).map((e) => ({ time: new Date(e.time).toISOString(), source: e.sourceId, type: e.type, message: printable(e.message, 200), service: e.service ?? null })),
    fleet: state.fleet,
  };
}

/** One snapshot with rates: two rounds over every socket, one interval apart. */
export async function topOnce(opts: TopOptions, signal?: AbortSignal): Promise<TopState> {
  const store = new TopStore();
  const live = await collectRound(store, { dir: opts.dir, docker: opts.fleet ? null : opts.docker });
  if (live > 0 && !signal?.aborted) {
    await sleep(opts.intervalMs, signal ?? new AbortController().signal);
    await collectRound(store, { dir: opts.dir, docker: null });
  }
  if (opts.fleet) store.setFleet(await opts.fleet.read());
  return store.state();
}

export interface LiveTop {
  readonly store: TopStore;
  readonly collector: Collector;
  stop(): void;
}

/** A live store fed by every socket; `flush()` runs every interval so views refresh at that rate. */
export async function startTop(opts: TopOptions, signal: AbortSignal): Promise<LiveTop> {
  const store = new TopStore();
  const collector = new Collector(store, { dir: opts.dir, intervalMs: opts.intervalMs, docker: opts.docker, logger: opts.logger });
  await collector.start(signal);
  const timer = setInterval(() => store.flush(), opts.intervalMs);
  const fleet = opts.fleet ? followFleet(store, opts.fleet, opts.intervalMs) : null;
  const gc = idleCollector();
  const gcTimer = gc ? setInterval(gc, GC_EVERY_MS) : null;
  gcTimer?.unref();
  const stop = () => {
    clearInterval(timer);
    if (fleet) clearInterval(fleet);
    if (gcTimer) clearInterval(gcTimer);
    collector.stop();
  };
  signal.addEventListener('abort', stop, { once: true });
  return { store, collector, stop };
}

/** The fleet read every interval, one read at a time (a slow store does not pile reads up). */
function followFleet(store: TopStore, reader: FleetReader, intervalMs: number): NodeJS.Timeout {
  let busy = false;
  const read = () => {
    if (busy) return;
    busy = true;
    void reader.read().then((f) => store.setFleet(f)).finally(() => (busy = false));
  };
  read();
  return setInterval(read, Math.max(intervalMs, 500));
}

/**
 * Every snapshot is parsed, adapted and kept until the next one arrives, so with 1,000 backends
 * at 4 refreshes/s most garbage lives long enough to be promoted, and V8 lets the old space grow
 * to ~250 MB before it collects it (the live data is ~15 MB). A full collection every few
 * seconds costs well under 1% of a core and keeps RSS near the live size. Measured in
 * docs/bench/top.md.
 */
const GC_EVERY_MS = 3000;

function idleCollector(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? () => (gc as () => void)() : null;
  } catch {
    return null;
  }
}

/** States every interval until the signal aborts (`--json --watch`). The first waits one interval for rates. */
export async function* topWatch(opts: TopOptions, signal: AbortSignal): AsyncGenerator<TopState> {
  const live = await startTop(opts, signal);
  try {
    while (!signal.aborted) {
      await sleep(opts.intervalMs, signal);
      if (signal.aborted) break;
      yield live.store.state();
    }
  } finally {
    live.stop();
  }
}

/** `1`, `0.25`, `2s`, `250ms` -> milliseconds, 100 ms to 60 s (the --interval flag). */
export function parseInterval(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text.trim());
  const ms = m ? Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : 1000)) : Number.NaN;
  if (!Number.isFinite(ms) || ms < 100 || ms > 60_000) {
    throw new UserError(`invalid --interval "${printable(text, 20)}"`, 'give seconds (0.25, 1, 5) or milliseconds (250ms), between 100ms and 60s', ExitCode.usage);
  }
  return ms;
}
