import { createServer, type Server } from 'node:http';
import { createSocket, type Socket } from 'node:dgram';
import { readdir } from 'node:fs/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describeError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';

/**
 * One metrics registry for the daemon: counters, gauges and histograms with labels; exposed in
 * the Prometheus text format (0.0.4) on an HTTP listener and pushed to statsd over UDP. Values
 * that live elsewhere (kernel DNAT counters, HAProxy stats, edge queues) are pulled by
 * collectors just before a scrape or a flush, so what is exposed is what is true now.
 * The metric names are documented in docs/run.md ("Metrics").
 */
export type Labels = Readonly<Record<string, string | number>>;
type Kind = 'counter' | 'gauge' | 'histogram';

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
export const DEFAULT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

interface HistogramData {
  counts: number[];
  sum: number;
  count: number;
  /** Observations since the last statsd flush (bounded). */
  pending: number[];
}

export class MetricFamily {
  private readonly series = new Map<string, { labels: Labels; value: number; hist?: HistogramData }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: Kind,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[] = DEFAULT_BUCKETS,
  ) {
    if (!NAME_RE.test(name)) throw new Error(`invalid metric name ${name}`);
    for (const l of labelNames) if (!LABEL_RE.test(l) || l === 'le' || l === 'quantile') throw new Error(`invalid label name ${l}`);
  }

  private key(labels: Labels): string {
    return this.labelNames.map((l) => String(labels[l] ?? '')).join('\u0000');
  }

  private entry(labels: Labels) {
    const k = this.key(labels);
    let e = this.series.get(k);
    if (!e) {
      const own: Record<string, string> = {};
      for (const l of this.labelNames) own[l] = String(labels[l] ?? '');
      e = { labels: own, value: 0 };
      if (this.kind === 'histogram') e.hist = { counts: this.buckets.map(() => 0), sum: 0, count: 0, pending: [] };
      this.series.set(k, e);
    }
    return e;
  }

  /** Counters only go up (by a non-negative amount). */
  inc(labels: Labels = {}, by = 1): void {
    if (this.kind === 'histogram' || (this.kind === 'counter' && !(by >= 0))) throw new Error(`cannot inc ${this.name} by ${by}`);
    this.entry(labels).value += by;
  }

  /** Gauges, and counters whose total is kept elsewhere (kernel packet counters, HAProxy totals). */
  set(labels: Labels, value: number): void {
    if (this.kind === 'histogram') throw new Error(`cannot set histogram ${this.name}`);
    this.entry(labels).value = value;
  }

  observe(labels: Labels, value: number): void {
    if (this.kind !== 'histogram') throw new Error(`cannot observe ${this.name}`);
    const h = this.entry(labels).hist!;
    this.buckets.forEach((b, i) => {
      if (value <= b) h.counts[i]!++;
    });
    h.sum += value;
    h.count++;
    if (h.pending.length < 1000) h.pending.push(value);
  }

  get(labels: Labels = {}): number | undefined {
    const e = this.series.get(this.key(labels));
    return e?.hist ? e.hist.count : e?.value;
  }

  /** Forget every series (a collector refills what exists now: gone backends disappear). */
  clear(): void {
    this.series.clear();
  }

  expose(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`];
    const fmt = (labels: Labels, extra?: [string, string]) => {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(String(v))}"`);
      if (extra) pairs.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
      return pairs.length ? `{${pairs.join(',')}}` : '';
    };
    for (const { labels, value, hist } of this.series.values()) {
      if (!hist) {
        lines.push(`${this.name}${fmt(labels)} ${formatValue(value)}`);
        continue;
      }
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${fmt(labels, ['le', formatValue(b)])} ${hist.counts[i]}`));
      lines.push(`${this.name}_bucket${fmt(labels, ['le', '+Inf'])} ${hist.count}`);
      lines.push(`${this.name}_sum${fmt(labels)} ${formatValue(hist.sum)}`);
      lines.push(`${this.name}_count${fmt(labels)} ${hist.count}`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** statsd lines: gauges as |g, counters as the increase since the last flush |c, observations |ms. */
  statsd(prefix: string, sent: Map<string, number>): string[] {
    const out: string[] = [];
    for (const [k, { labels, value, hist }] of this.series) {
      const name = [prefix, this.name.replace(/^elastic_/, ''), ...this.labelNames.map((l) => statsdPart(String(labels[l])))].filter(Boolean).join('.');
      if (hist) {
        for (const v of hist.pending.splice(0)) out.push(`${name}:${Math.round(v * 1000 * 1000) / 1000}|ms`);
      } else if (this.kind === 'gauge') out.push(`${name}:${value}|g`);
      else {
        const sk = `${this.name}\u0001${k}`;
        const delta = value - (sent.get(sk) ?? 0);
        sent.set(sk, value);
        if (delta > 0) out.push(`${name}:${delta}|c`);
      }
    }
    return out;
  }
}

/** A statsd name part: label values may be anything, the protocol reserves `.:|@#` and newlines. */
export function statsdPart(v: string): string {
  return v.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 100);
}

/**
 * Every metric the daemon exposes, in one place (docs/run.md "Metrics" lists the same). Label
 * values are bounded: config names (services, sources, appliers), fixed words, or addresses of
 * backends that exist now (collectors clear and refill them).
 */
export const METRIC = {
  backends: { name: 'elastic_backends', kind: 'gauge', help: 'backends served per service (after health and guardrails)', labels: ['service'] },
  backendUp: { name: 'elastic_backend_up', kind: 'gauge', help: 'a backend served now (1) per service; health is the last verdict (healthy, unhealthy, starting, none)', labels: ['service', 'backend', 'health'] },
  sourceBackends: { name: 'elastic_source_backends', kind: 'gauge', help: 'backends a source discovers (before health and guardrails)', labels: ['source'] },
  sourceErrors: { name: 'elastic_source_errors_total', kind: 'counter', help: 'discovery watches of a source that stopped with an error', labels: ['source'] },
  refusals: { name: 'elastic_refusals_total', kind: 'counter', help: 'backend sets refused by a guardrail', labels: ['service', 'rule'] },
  syncs: { name: 'elastic_syncs_total', kind: 'counter', help: 'applier syncs by result', labels: ['applier', 'result'] },
  syncDuration: { name: 'elastic_sync_duration_seconds', kind: 'histogram', help: 'time one applier sync took', labels: ['applier'] },
  lastSync: { name: 'elastic_last_successful_sync_timestamp_seconds', kind: 'gauge', help: 'unix time of the last successful sync per applier (0: none yet)', labels: ['applier'] },
  configReloads: { name: 'elastic_config_reloads_total', kind: 'counter', help: 'config reloads by result', labels: ['result'] },
  configInfo: { name: 'elastic_config_info', kind: 'gauge', help: 'the config in force (value 1)', labels: ['name', 'hash'] },
  buildInfo: { name: 'elastic_build_info', kind: 'gauge', help: 'the running elastic (value 1)', labels: ['version', 'node'] },
  cpu: { name: 'elastic_process_cpu_seconds_total', kind: 'counter', help: 'CPU time of the daemon process (user + system)', labels: [] },
  rss: { name: 'elastic_process_resident_memory_bytes', kind: 'gauge', help: 'resident memory of the daemon process', labels: [] },
  fds: { name: 'elastic_process_open_fds', kind: 'gauge', help: 'open file descriptors of the daemon process', labels: [] },
  lag: { name: 'elastic_event_loop_lag_seconds', kind: 'gauge', help: 'event loop delay (p99 over the last scrape interval)', labels: [] },
  start: { name: 'elastic_process_start_time_seconds', kind: 'gauge', help: 'unix time the daemon started', labels: [] },
  proxyReloadsTotal: { name: 'elastic_proxy_reloads_total', kind: 'counter', help: 'proxy reloads (and starts) by kind', labels: ['proxy'] },
  proxyRuntimeOpsTotal: { name: 'elastic_proxy_runtime_ops_total', kind: 'counter', help: 'HAProxy runtime API operations (server changes without reload)', labels: ['proxy'] },
  proxyFailuresTotal: { name: 'elastic_proxy_failures_total', kind: 'counter', help: 'proxy applies that failed (last good config restored)', labels: ['proxy'] },
  haproxySessions: { name: 'elastic_haproxy_sessions', kind: 'gauge', help: 'current sessions per HAProxy server', labels: ['service', 'server', 'address'] },
  haproxyQueue: { name: 'elastic_haproxy_queue', kind: 'gauge', help: 'requests queued per HAProxy server', labels: ['service', 'server', 'address'] },
  haproxySessionsTotal: { name: 'elastic_haproxy_sessions_total', kind: 'counter', help: 'sessions served per HAProxy server', labels: ['service', 'server', 'address'] },
  dnatPacketsTotal: { name: 'elastic_dnat_packets_total', kind: 'counter', help: 'packets DNATed to each backend (kernel counters)', labels: ['mapping', 'backend'] },
  dnatBytesTotal: { name: 'elastic_dnat_bytes_total', kind: 'counter', help: 'bytes DNATed to each backend (kernel counters)', labels: ['mapping', 'backend'] },
  edgeQueued: { name: 'elastic_edge_queued', kind: 'gauge', help: 'clients waiting in the edge queue', labels: ['service', 'route'] },
  edgeActive: { name: 'elastic_edge_active', kind: 'gauge', help: 'client connections being served through the edge', labels: ['service', 'route'] },
  edgeNodes: { name: 'elastic_edge_nodes', kind: 'gauge', help: 'nodes connected to the edge', labels: ['service', 'route'] },
  edgeWaitSeconds: { name: 'elastic_edge_wait_seconds', kind: 'gauge', help: 'client wait for a node (p50 and p99 of recent clients)', labels: ['service', 'route', 'q'] },
  edgeTimeoutsTotal: { name: 'elastic_edge_timeouts_total', kind: 'counter', help: 'clients that waited past the queue timeout', labels: ['service', 'route'] },
  apiRequests: { name: 'elastic_api_requests_total', kind: 'counter', help: 'ELB API requests by action and result code', labels: ['action', 'code'] },
} as const satisfies Record<string, { name: string; kind: Kind; help: string; labels: readonly string[] }>;

export type MetricKey = keyof typeof METRIC;

export type Collector = () => void | Promise<void>;

export class MetricsRegistry {
  private readonly families = new Map<string, MetricFamily>();
  private readonly collectors: Array<{ name: string; fn: Collector }> = [];

  constructor(private readonly log: Logger = nullLogger) {}

  private family(name: string, help: string, kind: Kind, labelNames: readonly string[], buckets?: readonly number[]): MetricFamily {
    const existing = this.families.get(name);
    if (existing) {
      if (existing.kind !== kind) throw new Error(`metric ${name} is a ${existing.kind}`);
      return existing;
    }
    const f = new MetricFamily(name, help, kind, labelNames, buckets);
    this.families.set(name, f);
    return f;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): MetricFamily {
    return this.family(name, help, 'counter', labelNames);
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): MetricFamily {
    return this.family(name, help, 'gauge', labelNames);
  }
  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets = DEFAULT_BUCKETS): MetricFamily {
    return this.family(name, help, 'histogram', labelNames, buckets);
  }

  /** A metric of the METRIC table. */
  of(key: MetricKey): MetricFamily {
    const m = METRIC[key];
    return this.family(m.name, m.help, m.kind, m.labels);
  }

  /** Called before every scrape and flush; a failing collector is logged and the rest go on. */
  addCollector(name: string, fn: Collector): () => void {
    const entry = { name, fn };
    this.collectors.push(entry);
    return () => {
      const i = this.collectors.indexOf(entry);
      if (i >= 0) this.collectors.splice(i, 1);
    };
  }

  async collect(timeoutMs = 3000): Promise<void> {
    await Promise.all(
      this.collectors.map(async (c) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([c.fn(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), timeoutMs)))]);
        } catch (err) {
          this.log.debug('metrics collector failed', { collector: c.name, error: describeError(err) });
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  expose(): string {
    return [...this.families.values()].map((f) => f.expose()).join('');
  }

  statsdLines(prefix: string, sent: Map<string, number>): string[] {
    return [...this.families.values()].flatMap((f) => f.statsd(prefix, sent));
  }
}

/** `GET <path>` -> the exposition; everything else 404. Binds 127.0.0.1 unless told otherwise. */
export async function serveMetrics(registry: MetricsRegistry, opts: { address: string; port: number; path: string }): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== opts.path) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    void registry.collect().then(() => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(registry.expose());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return { server, port, close: () => new Promise((r) => server.close(() => r())) };
}

/** Pushes the registry to statsd every `intervalMs`, in datagrams of at most ~1400 bytes. */
export class StatsdEmitter {
  private readonly socket: Socket;
  private readonly sent = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  packets = 0;

  constructor(
    private readonly registry: MetricsRegistry,
    private readonly opts: { host: string; port: number; prefix: string; intervalMs: number },
    private readonly log: Logger = nullLogger,
  ) {
    this.socket = createSocket(opts.host.includes(':') ? 'udp6' : 'udp4');
    this.socket.on('error', (err) => this.log.debug('statsd send failed', { error: err.message }));
    this.socket.unref();
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.opts.intervalMs);
    this.timer.unref();
  }

  async flush(): Promise<number> {
    await this.registry.collect();
    const lines = this.registry.statsdLines(this.opts.prefix, this.sent);
    const datagrams: string[] = [];
    let cur = '';
    for (const l of lines) {
      if (cur && cur.length + 1 + l.length > 1400) {
        datagrams.push(cur);
        cur = '';
      }
      cur = cur ? `${cur}\n${l}` : l;
    }
    if (cur) datagrams.push(cur);
    await Promise.all(datagrams.map((d) => new Promise<void>((r) => this.socket.send(d, this.opts.port, this.opts.host, () => r()))));
    this.packets += datagrams.length;
    return lines.length;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush().catch(() => {});
    await new Promise<void>((r) => this.socket.close(() => r()));
  }
}

/**
 * The daemon process itself, read at scrape/flush time: CPU, RSS, open fds, event-loop delay
 * (p99 since the previous read), start time; and the build (version, Node) as an info gauge.
 */
export function processMetrics(registry: MetricsRegistry, version: string): () => void {
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  registry.of('buildInfo').set({ version, node: process.version }, 1);
  registry.of('start').set({}, Math.round(Date.now() / 1000 - process.uptime()));
  const collect = async () => {
    const cpu = process.cpuUsage();
    registry.of('cpu').set({}, (cpu.user + cpu.system) / 1e6);
    registry.of('rss').set({}, process.memoryUsage.rss());
    registry.of('fds').set({}, (await readdir('/proc/self/fd').catch(() => [])).length);
    registry.of('lag').set({}, Number.isFinite(loop.percentile(99)) ? loop.percentile(99) / 1e9 : 0);
    loop.reset();
  };
  const off = registry.addCollector('process', collect);
  void collect();
  return () => {
    off();
    loop.disable();
  };
}
