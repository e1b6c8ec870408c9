import type { TopFleet } from './fleet.js';
import { RateSeries, DEFAULT_SERIES, type SeriesOptions } from './series.js';
import { COUNTER_NAMES, sourceId, type BackendSample, type ServiceSample, type SourceSample } from './model.js';
import { printable } from '../model/validate.js';

/**
 * The one store behind every `top` view: samples from all sources go in (`ingest`), rows with
 * rates come out (`state()`). Pure apart from the clock passed in: no sockets, no timers — the
 * collector feeds it, and the UI or the plain renderer reads it. `flush()` recomputes the rows and
 * tells subscribers, so the frame rate is the caller's choice, not the sources'.
 */
export interface ServiceRow {
  readonly key: string; // `<sourceId>/<service>`
  readonly sourceId: string;
  readonly kind: string;
  readonly service: string;
  /** What the SERVICE column shows: the service, or `service@source` when another source of the same kind has a service of that name (two edges with route `default`). */
  readonly label: string;
  readonly role: string;
  readonly backends: number;
  readonly healthy: number;
  /** Requests (hits) per second, or packets per second for kernel mappings. */
  readonly rate: number | null;
  readonly rateUnit: 'req/s' | 'pkt/s' | '';
  readonly bytesRate: number | null;
  readonly connections: number | null;
  readonly queued: number | null;
  readonly capacity: number | null;
  readonly nodes: number | null;
  readonly replicas: number | null;
  readonly desired: number | null;
  readonly waitP50Ms: number | null;
  readonly waitP99Ms: number | null;
  readonly timeouts: number | null;
  readonly detail: Readonly<Record<string, string>>;
}

export interface BackendRow {
  readonly key: string; // `<sourceId>/<service>/<backend key>`
  readonly serviceKey: string;
  readonly sourceId: string;
  readonly kind: string;
  readonly service: string;
  /** The backend's id as its source knows it (container id, edge node id, HAProxy server). */
  readonly id: string;
  readonly name: string;
  readonly endpoint: string;
  readonly address: string;
  readonly port: number | null;
  readonly origin: string;
  readonly health: string;
  readonly state: string;
  readonly pktRate: number | null;
  readonly bytesRate: number | null;
  readonly hitRate: number | null;
  readonly sessions: number | null;
  readonly queued: number | null;
}

export interface TimelineEvent {
  readonly time: number;
  readonly sourceId: string;
  readonly type: string;
  readonly message: string;
  readonly service?: string;
}

export interface SourceInfo {
  readonly id: string;
  readonly kind: string;
  readonly name: string;
  readonly pid: number | null;
  readonly status: 'live' | 'lost';
  readonly lastSeen: number;
  readonly error?: string;
}

export interface TopState {
  readonly version: number;
  readonly now: number;
  readonly sources: readonly SourceInfo[];
  readonly services: readonly ServiceRow[];
  readonly backends: readonly BackendRow[];
  readonly timeline: readonly TimelineEvent[];
  /** A line for the header: how to start something when nothing is configured, or a problem. */
  readonly notice: string | null;
  /** The fleet (Hosts view): top's own store read (--etcd), else a live fleet daemon's. */
  readonly fleet: TopFleet | null;
}

interface SourceEntry {
  sample: SourceSample;
  status: 'live' | 'lost';
  lastSeen: number;
  error?: string;
  /** Series by `<service>/<backend key>/<metric>` or `<service>//<metric>`. */
  series: Map<string, RateSeries>;
  /** Latest rate per series key (null before two samples). */
  rates: Map<string, number | null>;
  /** Events already merged: the newest event time seen, and the keys seen at that time. */
  eventMark: { time: string; keys: Set<string> };
}

export interface TopStoreOptions {
  series?: SeriesOptions;
  maxEvents?: number;
}

export class TopStore {
  private readonly sources = new Map<string, SourceEntry>();
  private timeline: TimelineEvent[] = [];
  private readonly listeners = new Set<() => void>();
  private dirty = true;
  private version = 0;
  private cached: TopState | null = null;
  private notice: string | null = null;
  private ownFleet: TopFleet | null = null;

  constructor(private readonly opts: TopStoreOptions = {}) {}

  /** A new sample from a source. Rates are computed here, from the sample's own time. */
  ingest(sample: SourceSample, now = Date.now()): void {
    const id = sourceId(sample);
    let entry = this.sources.get(id);
    if (!entry) {
      entry = { sample, status: 'live', lastSeen: now, series: new Map(), rates: new Map(), eventMark: { time: '', keys: new Set() } };
      this.sources.set(id, entry);
      this.addEvent({ time: now, sourceId: id, type: 'source', message: `${sample.kind} ${sample.name} connected${sample.pid ? ` (pid ${sample.pid})` : ''}` });
    } else if (entry.status === 'lost') {
      this.addEvent({ time: now, sourceId: id, type: 'source', message: `${sample.kind} ${sample.name} back` });
    }
    entry.sample = sample;
    entry.status = 'live';
    entry.lastSeen = now;
    delete entry.error;
    this.updateSeries(entry, sample);
    this.mergeEvents(id, entry, sample);
    this.dirty = true;
  }

  /** A source stopped answering (its socket closed or vanished). Its rows go; the event stays. */
  lose(id: string, why: string, now = Date.now(), forget = false): void {
    const entry = this.sources.get(id);
    if (!entry) return;
    if (forget) this.sources.delete(id);
    else if (entry.status === 'lost' && entry.error === why) return;
    else {
      entry.status = 'lost';
      entry.error = why;
    }
    this.addEvent({ time: now, sourceId: id, type: 'source', message: `${entry.sample.kind} ${entry.sample.name} ${printable(why, 120)}` });
    this.dirty = true;
  }

  /** The fleet as top read it from the store itself (`top --etcd --fleet`). */
  setFleet(fleet: TopFleet | null): void {
    this.ownFleet = fleet;
    this.dirty = true;
  }

  setNotice(text: string | null): void {
    if (text === this.notice) return;
    this.notice = text;
    this.dirty = true;
  }

  /** An event of top's own (an action's result). */
  note(type: string, message: string, now = Date.now(), service?: string): void {
    this.addEvent({ time: now, sourceId: 'top', type, message: printable(message, 200), ...(service ? { service } : {}) });
    this.dirty = true;
  }

  sourceIds(): string[] {
    return [...this.sources.keys()];
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Recompute the rows when something changed and tell subscribers. */
  flush(now = Date.now()): void {
    if (!this.dirty) return;
    this.cached = this.compute(now);
    this.dirty = false;
    for (const fn of this.listeners) fn();
  }

  state(now = Date.now()): TopState {
    if (!this.cached || this.dirty) {
      this.cached = this.compute(now);
      this.dirty = false;
    }
    return this.cached;
  }

  /** Sparkline data: the last `count` buckets of a row's metric (`rate`, `bytes`, `queued`, `connections`). */
  history(rowKey: string, metric: string, count: number, now = Date.now()): number[] {
    const [src = '', ...rest] = splitKey(rowKey);
    const entry = this.sources.get(src);
    const series = entry?.series.get(`${rest.join('/')}${rest.length === 1 ? '/' : ''}/${metric}`);
    return series ? series.history(count, now) : new Array<number>(count).fill(Number.NaN);
  }

  private updateSeries(entry: SourceEntry, sample: SourceSample): void {
    const next = new Map<string, RateSeries>();
    const rates = new Map<string, number | null>();
    const t = sample.time;
    const counter = (key: string, value: number | undefined) => {
      if (value === undefined) return;
      const s = entry.series.get(key) ?? new RateSeries(this.opts.series ?? DEFAULT_SERIES);
      next.set(key, s);
      const r = s.add(value, t);
      rates.set(key, r);
    };
    const gauge = (key: string, value: number | null | undefined) => {
      if (value === undefined || value === null) return;
      const s = entry.series.get(key) ?? new RateSeries(this.opts.series ?? DEFAULT_SERIES);
      next.set(key, s);
      s.record(value, t);
    };
    for (const svc of sample.services) {
      const sums: Record<string, number | null> = {};
      for (const b of svc.backends) {
        for (const c of COUNTER_NAMES) {
          const key = `${svc.service}/${b.key}/${c}`;
          counter(key, b.counters[c]);
          const r = rates.get(key);
          if (r !== undefined && r !== null) sums[c] = (sums[c] ?? 0) + r;
          else if (b.counters[c] !== undefined && !(c in sums)) sums[c] = null;
        }
      }
      // Service rate: its own request counter (edge), else the sum of its backends' rates.
      for (const c of COUNTER_NAMES) counter(`${svc.service}//own-${c}`, svc.counters[c]);
      const own = rates.get(`${svc.service}//own-hits`);
      const hits = own ?? sums.hits ?? null;
      for (const [metric, v] of [['hits', hits], ['packets', sums.packets ?? null], ['bytes', sums.bytes ?? null]] as const) {
        rates.set(`${svc.service}//${metric}`, v);
        gauge(`${svc.service}//${metric}`, v);
      }
      counter(`${svc.service}//timeouts`, svc.counters.timeouts);
      gauge(`${svc.service}//queued`, serviceQueued(svc));
      gauge(`${svc.service}//connections`, serviceConnections(svc));
    }
    entry.series = next; // series of vanished backends are dropped here
    entry.rates = rates;
  }

  private mergeEvents(id: string, entry: SourceEntry, sample: SourceSample): void {
    const mark = entry.eventMark;
    for (const e of sample.events) {
      if (e.time < mark.time) continue;
      const key = `${e.type}\u0000${e.message}\u0000${e.service ?? ''}`;
      if (e.time === mark.time && mark.keys.has(key)) continue;
      if (e.time > mark.time) {
        mark.time = e.time;
        mark.keys = new Set();
      }
      mark.keys.add(key);
      const t = Date.parse(e.time);
      this.addEvent({ time: Number.isFinite(t) ? t : sample.time, sourceId: id, type: e.type, message: e.message, ...(e.service ? { service: e.service } : {}) });
    }
  }

  private addEvent(e: TimelineEvent): void {
    const tl = this.timeline;
    // Sources' clocks and arrival order differ: insert in time order (nearly always at the end).
    let i = tl.length;
    while (i > 0 && tl[i - 1]!.time > e.time) i--;
    tl.splice(i, 0, e);
    const max = this.opts.maxEvents ?? 500;
    if (tl.length > max) tl.splice(0, tl.length - max);
  }

  private compute(now: number): TopState {
    const services: ServiceRow[] = [];
    const backends: BackendRow[] = [];
    const sources: SourceInfo[] = [];
    const healthByEndpoint = new Map<string, string>();
    for (const [id, entry] of [...this.sources].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const s = entry.sample;
      sources.push({ id, kind: s.kind, name: s.name, pid: s.pid, status: entry.status, lastSeen: entry.lastSeen, ...(entry.error ? { error: entry.error } : {}) });
      if (entry.status === 'lost') continue;
      const rate = (k: string) => entry.rates.get(k) ?? null;
      for (const svc of s.services) {
        const skey = `${id}/${svc.service}`;
        const hits = rate(`${svc.service}//hits`);
        const packets = rate(`${svc.service}//packets`);
        const unit = hits !== null || svc.counters.hits !== undefined || svc.backends.some((b) => b.counters.hits !== undefined) ? 'req/s' : packets !== null || svc.backends.some((b) => b.counters.packets !== undefined) ? 'pkt/s' : '';
        services.push({
          key: skey,
          sourceId: id,
          kind: s.kind,
          service: svc.service,
          label: svc.service,
          role: svc.role,
          backends: svc.backends.length,
          healthy: svc.backends.filter((b) => b.health === 'healthy').length,
          rate: unit === 'req/s' ? hits : unit === 'pkt/s' ? packets : null,
          rateUnit: unit,
          bytesRate: rate(`${svc.service}//bytes`),
          connections: serviceConnections(svc),
          queued: serviceQueued(svc),
          capacity: svc.capacity ?? null,
          nodes: svc.nodes ?? null,
          replicas: svc.replicas ?? null,
          desired: svc.desired ?? null,
          waitP50Ms: svc.waitP50Ms ?? null,
          waitP99Ms: svc.waitP99Ms ?? null,
          timeouts: svc.counters.timeouts ?? null,
          detail: svc.detail,
        });
        for (const b of svc.backends) {
          const bk = `${svc.service}/${b.key}`;
          if (b.health !== '-') healthByEndpoint.set(b.key, b.health);
          backends.push(backendRow(`${id}/${bk}`, skey, id, s.kind, svc.service, b, rate(`${bk}/packets`), rate(`${bk}/bytes`), rate(`${bk}/hits`)));
        }
      }
    }
    // A kernel mapping does not know health; discovery or the proxy does: show theirs.
    const withHealth = backends.map((b) => (b.health === '-' && healthByEndpoint.has(b.endpoint) ? { ...b, health: healthByEndpoint.get(b.endpoint)! } : b));
    this.version++;
    return { version: this.version, now, sources, services: labelled(services), backends: withHealth, timeline: [...this.timeline], notice: this.notice, fleet: this.ownFleet ?? [...this.sources.values()].find((e) => e.status === 'live' && e.sample.fleet)?.sample.fleet ?? null };
  }
}

/** Rows that would look the same (same service and kind, other sources) say which source they are. */
function labelled(rows: ServiceRow[]): ServiceRow[] {
  const count = new Map<string, number>();
  for (const r of rows) count.set(`${r.kind}\0${r.service}`, (count.get(`${r.kind}\0${r.service}`) ?? 0) + 1);
  return rows.map((r) => ((count.get(`${r.kind}\0${r.service}`) ?? 0) > 1 ? { ...r, label: `${r.service}@${r.sourceId.slice(r.kind.length + 1) || r.sourceId}` } : r));
}

function backendRow(key: string, serviceKey: string, sid: string, kind: string, service: string, b: BackendSample, pkt: number | null, bytes: number | null, hits: number | null): BackendRow {
  return {
    key,
    serviceKey,
    sourceId: sid,
    kind,
    service,
    id: b.id,
    name: b.name,
    endpoint: b.key,
    address: b.address,
    port: b.port,
    origin: b.source,
    health: b.health,
    state: b.state,
    pktRate: pkt,
    bytesRate: bytes,
    hitRate: hits,
    sessions: b.sessions ?? null,
    queued: b.queued ?? null,
  };
}

function sumOf(values: ReadonlyArray<number | undefined>): number | null {
  let n: number | null = null;
  for (const v of values) if (v !== undefined) n = (n ?? 0) + v;
  return n;
}

/** Held connections waiting: the service's own queue (edge), else its backends' queues (HAProxy). */
const serviceQueued = (svc: ServiceSample) => svc.queued ?? sumOf(svc.backends.map((b) => b.queued));
const serviceConnections = (svc: ServiceSample) => svc.active ?? sumOf(svc.backends.map((b) => b.sessions));

/** `<sourceId>/<service>[/<backend key>]`: source ids and services have no `/`, backend keys neither. */
function splitKey(key: string): string[] {
  return key.split('/');
}
