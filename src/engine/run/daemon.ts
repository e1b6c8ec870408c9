import { createRequire } from 'node:module';
import { nullLogger, type Logger } from '../runtime/logger.js';
import { runDir, securePrivateDirs, stateDir } from '../runtime/paths.js';
import { FileStateStore, removeStaleTemps, type StateStore } from '../runtime/state-store.js';
import { StatusServer } from '../runtime/status.js';
import { youngGenerationFor } from '../runtime/young-gen.js';
import { EdgeApplier, RenderApplier, toServiceSpec, type RunApplier } from './appliers.js';
import { MapImageApplier } from './mapimage-applier.js';
import { DaemonElb } from './daemon-elb.js';
import { DaemonLabels } from './daemon-labels.js';
import type { ServiceSpec } from '../frontends/model.js';
import { newDrains } from '../frontends/renderer.js';
import { configSummary, loadConfig, servedBy, type RunConfig } from './config.js';
import { DaemonDeploys, type SingletonGate } from './deploys.js';
import { MetricsRegistry, processMetrics, serveMetrics, StatsdEmitter } from './metrics.js';
import { nothingCarried, Pipeline, type Carried } from './pipeline.js';
import { assertNewBindsFree, listenError } from './ports.js';
import { daemonActions, drainAll, servicesView } from './daemon-status.js';
import { Reloader, type ReloadResult } from './reload.js';

/**
 * `elastic run`: one process per LB host that keeps every mapping, rendered proxy and edge of
 * `elastic.yaml` in sync. Lifecycle: start (config -> pipeline, status socket, metrics, API),
 * reload (SIGHUP: a new config is validated first; a bad one is refused and the old keeps
 * running), stop (SIGTERM: watches and runners stop; DNAT rules and proxies stay and serve).
 */
export interface DaemonOptions {
  file: string;
  /** Where start() and reload() get the config; default: parse `file` (a fleet host: the store). */
  source?: ConfigSource;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  store?: StateStore;
  /** A fleet host: deploys: run only while this host leads (fleet/agent.ts). */
  singleton?: SingletonGate;
  /** ELB listeners (from the shared store) not served here because their port is taken; [] when all are. */
  onElbRefused?: (problems: readonly string[]) => void;
  statusDir?: string;
  /** --once: sync once and stop. */
  once?: boolean;
  /** A fleet host: the fleet's status, in the status socket (top's Hosts view). */
  statusFleet?: () => Promise<unknown>;
}

const VERSION = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

/** Where start() and reload() get the config: the file (default) or a fleet store (fleet/agent.ts). */
export interface ConfigSource {
  load(): Promise<RunConfig>;
}

export class RunDaemon {
  private config!: RunConfig;
  private pipeline: Pipeline | null = null;
  private appliers: RunApplier[] = [];
  /** Drain requests per proxy kind: a reload's new appliers keep them (a drained backend stays out). */
  private readonly drains = { haproxy: newDrains(), nginx: newDrains(), varnish: newDrains() };
  private status: StatusServer | null = null;
  private metricsServer: { port: number; close(): Promise<void> } | null = null;
  private statsd: StatsdEmitter | null = null;
  /** The ELB API: its server, load balancers and the containers they may name. */
  private readonly elb: DaemonElb;
  /** routes_from_labels: routed services from container labels. */
  private readonly labels: DaemonLabels;
  private reloading: Promise<void> = Promise.resolve();
  /** The config summary the status socket shows (mutated in place: the server holds this object). */
  private readonly statusConfig: Record<string, unknown> = {};
  private processMetricsOff: (() => void) | null = null;
  /** The config's deploys:, reconciled at start, on SIGHUP and under --once. */
  private readonly deploys: DaemonDeploys;
  private readonly deploysAbort = new AbortController();
  readonly metrics: MetricsRegistry;
  readonly store: StateStore;
  private readonly log: Logger;

  constructor(private readonly opts: DaemonOptions) {
    this.log = opts.logger ?? nullLogger;
    this.store = opts.store ?? new FileStateStore(stateDir(opts.env), { recover: true, logger: this.log.child('state') });
    this.metrics = new MetricsRegistry(this.log.child('metrics'));
    this.deploys = new DaemonDeploys({
      store: this.store,
      logger: this.log,
      env: opts.env,
      runDir: opts.statusDir,
      signal: this.deploysAbort.signal,
      singleton: opts.singleton,
      event: (type, message, service) => this.status?.event(type, message, service),
      changed: () => this.pipeline?.requestAll('deploy'),
    });
    this.elb = new DaemonElb({
      store: this.store,
      log: this.log,
      metrics: this.metrics,
      env: opts.env,
      once: opts.once,
      config: () => this.config,
      haproxy: () => this.appliers.find((a): a is RenderApplier => a instanceof RenderApplier && a.kind === 'haproxy'),
      respec: () => this.respec(),
      requestHaproxy: (reason) => this.pipeline?.requestApplier('haproxy', reason),
      event: (type, message) => this.status?.event(type, message),
      onRefused: opts.onElbRefused,
    });
    this.labels = new DaemonLabels({ log: this.log, once: opts.once, config: () => this.config, respec: () => this.respec(), request: (kind, reason) => this.pipeline?.requestApplier(kind, reason) });
    this.reloader = this.makeReloader();
  }

  /** Every spec a proxy applier serves: the config's services, the ELB listeners, the label routes. */
  private specsFor(c: RunConfig, kind: 'haproxy' | 'nginx' | 'varnish'): ServiceSpec[] {
    const specs = c.services.filter((s) => s[kind]).map((s) => toServiceSpec(s.name, s[kind]!));
    if (kind === 'haproxy') specs.push(...this.elb.specs(c));
    return [...specs, ...this.labels.specs(c, kind)];
  }

  private respec(): void {
    for (const a of this.appliers) if (a instanceof RenderApplier) a.setSpecs(this.specsFor(this.config, a.kind as 'haproxy' | 'nginx' | 'varnish'));
  }

  get current(): RunConfig {
    return this.config;
  }
  get metricsPort(): number | null {
    return this.metricsServer?.port ?? null;
  }
  get apiPort(): number | null {
    return this.elb.port;
  }

  async start(): Promise<void> {
    this.config = await this.loadConfig();
    await this.securePaths();
    this.configInForce();
    if (!this.opts.once) {
      this.processMetricsOff = processMetrics(this.metrics, VERSION);
      for (const result of ['applied', 'unchanged', 'refused', 'failed']) this.metrics.of('configReloads').inc({ result }, 0);
      this.status = new StatusServer({
        kind: 'run',
        name: this.config.name,
        dir: this.opts.statusDir,
        config: this.statusConfig, // switched in place by a successful reload
        services: () => this.statusServices(),
        fleet: this.opts.statusFleet,
        actions: daemonActions({ reload: () => this.reload(), requestAll: (reason) => this.pipeline?.requestAll(reason), drain: (args) => this.drain(args) }),
      });
      await this.status.listen(); // also the lock: a second daemon of this name is refused
    }
    try {
      await this.startEdges();
      await this.startMetrics();
      await this.elb.start();
      await this.labels.start();
      // --once: deploy first, so the one sync that follows lists the containers it created.
      if (this.opts.once) await this.deploys.reconcile(this.config.deploys);
      await this.startPipeline(this.config, await this.buildAppliers(this.config));
      if (!this.opts.once) {
        // In the background: a rollout takes minutes, the data plane must follow meanwhile.
        void this.deploys.reconcile(this.config.deploys);
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.log.info('running', { config: this.config.file, hash: this.config.hash, services: this.config.services.length, sources: Object.keys(this.config.sources).length });
  }

  /** State and run dirs private (warn and fix when looser); temp files of killed writers removed. */
  private async securePaths(): Promise<void> {
    const dirs = [this.store.location, this.opts.statusDir ?? runDir(this.opts.env)];
    for (const fix of await securePrivateDirs(dirs)) this.log.warn(`permissions too open: ${fix} (state and run directories hold secrets)`);
    // Whatever the store (a fleet host's keeps its local keys in this directory too).
    const removed = await removeStaleTemps(this.store.location);
    if (removed.length) this.log.info('removed temp files left by an interrupted write', { files: removed.join(' ') });
  }

  /** --once: every applier synced once from a full listing; nothing keeps running. */
  async runOnce(signal: AbortSignal, timeoutMs = 60_000): Promise<Record<string, string>> {
    try {
      return await this.pipeline!.syncOnce(signal, timeoutMs);
    } finally {
      await this.stop();
    }
  }

  /** Deploy state per deploy (also in the status socket, under the service of the same name). */
  deployStatus() {
    return this.deploys.status();
  }

  private async buildAppliers(c: RunConfig): Promise<RunApplier[]> {
    const ctx = { store: this.store, logger: this.log, env: this.opts.env };
    const out: RunApplier[] = [];
    for (const kind of ['haproxy', 'nginx', 'varnish'] as const) {
      const specs = this.specsFor(c, kind);
      const frontDoor = this.labels.frontDoor(c, kind);
      if (specs.length === 0 && !(kind === 'haproxy' && c.api) && !frontDoor) continue;
      const p = c.proxies[kind];
      const a = new RenderApplier(kind, p.instance, ctx, { bin: 'bin' in p ? p.bin : undefined, varnishInstance: 'varnishInstance' in p ? p.varnishInstance : undefined, tls: 'tls' in p ? p.tls : undefined, frontDoor, drains: this.drains[kind] });
      a.setSpecs(specs);
      a.pass = () => this.pipeline?.syncApplierAndWait(a.name, 'drain') ?? Promise.resolve();
      out.push(a);
    }
    const mapped = c.services.filter((s) => s.mapImage).map((s) => ({ name: s.name, serve: s.mapImage! }));
    const a = new MapImageApplier(c.name, ctx);
    // Also with no map_image service left: the mappings it declared before must leave the kernel.
    if (mapped.length || (await a.owned()).length) {
      await a.setServices(mapped);
      out.push(a);
    }
    return out;
  }

  /** Start a pipeline of `c` over `appliers` (built by buildAppliers), with health verdicts carried over. */
  private async startPipeline(c: RunConfig, appliers: RunApplier[], carried: Carried = nothingCarried()): Promise<void> {
    const edges = this.appliers.filter((a) => a.kind === 'edge');
    const pipeline = new Pipeline(c, [...appliers, ...edges], {
      store: this.store,
      logger: this.log,
      metrics: this.metrics,
      once: this.opts.once,
      carried,
      hooks: {
        event: (type, message, service) => this.status?.event(type, message, service),
        extraBackends: () => ({ ...this.elb.backends(c), ...this.labels.backends(c) }),
      },
    });
    try {
      await pipeline.start();
    } catch (err) {
      await pipeline.stop();
      for (const a of appliers) await a.close().catch(() => {});
      throw err;
    }
    this.pipeline = pipeline;
    // The previous config's appliers are done with (the edge's are kept or closed by startEdges).
    const replaced = this.appliers.filter((a) => a.kind !== 'edge' && !appliers.includes(a));
    this.appliers = [...appliers, ...edges];
    for (const a of replaced) await a.close().catch(() => {});
    this.metricsCollectors();
    // ELB services have no source: sync them now (and whenever the API or Docker changes them).
    if (c.api && this.elb.state.loadBalancers.length) pipeline.requestApplier('haproxy', 'elb');
    if (c.routesFromLabels) {
      this.respec(); // the first listing may have come in while these appliers were built
      pipeline.requestApplier(c.routesFromLabels.proxy, 'labels');
    }
  }

  private collectorsOff: Array<() => void> = [];
  private metricsCollectors(): void {
    for (const off of this.collectorsOff) off();
    this.collectorsOff = this.appliers.filter((a) => a.collect).map((a) => this.metrics.addCollector(a.name, () => a.collect!(this.metrics)));
    this.collectorsOff.push(
      this.metrics.addCollector('backends', () => {
        const up = this.metrics.of('backendUp');
        up.clear(); // only backends that exist now: the label values stay bounded
        for (const b of this.pipeline?.backendStates() ?? []) up.set({ service: b.service, backend: b.backend, health: b.health }, b.up ? 1 : 0);
      }),
    );
  }

  /** The edge lives in this process: (re)started only when its settings change. */
  private async startEdges(): Promise<void> {
    const wanted = this.opts.once ? [] : this.config.services.filter((s) => s.edge);
    const keep: RunApplier[] = [];
    for (const a of this.appliers.filter((x): x is EdgeApplier => x instanceof EdgeApplier)) {
      const s = wanted.find((w) => `edge:${w.name}` === a.name);
      if (s && JSON.stringify(s.edge) === JSON.stringify(a.serve)) keep.push(a);
      else await a.close();
    }
    for (const s of wanted) {
      if (keep.some((a) => a.name === `edge:${s.name}`)) continue;
      const a = new EdgeApplier(s.name, s.edge!, { store: this.store, logger: this.log, env: this.opts.env });
      await a.start();
      keep.push(a);
    }
    this.appliers = [...this.appliers.filter((a) => a.kind !== 'edge'), ...keep];
    youngGenerationFor(keep.length > 0);
  }

  private async startMetrics(previous?: RunConfig): Promise<void> {
    const p = this.config.metrics.prometheus;
    if (this.opts.once) return;
    if (JSON.stringify(previous?.metrics.prometheus) !== JSON.stringify(p) || !previous) {
      await this.metricsServer?.close();
      this.metricsServer = null; // closed: a failed listen below must not leave it looking open
      this.metricsServer = p ? await serveMetrics(this.metrics, p).catch((err) => Promise.reject(listenError('metrics', p, err))) : null;
    }
    const s = this.config.metrics.statsd;
    if (JSON.stringify(previous?.metrics.statsd) !== JSON.stringify(s) || !previous) {
      await this.statsd?.close();
      this.statsd = s ? new StatsdEmitter(this.metrics, s, this.log.child('statsd')) : null;
      this.statsd?.start();
    }
  }

  /**
   * SIGHUP (or a fleet version): read and validate the config, refuse a bind another process
   * serves (before anything stops), then `reloadWith`. Never rejects.
   */
  reload(): Promise<ReloadResult> {
    return this.reloader.reloadFrom(async () => {
      const next = await this.loadConfig();
      if (next.name === this.config.name) await assertNewBindsFree(next, this.config, this.opts.env);
      return next;
    });
  }

  /** The config source's current config: the file, or the fleet store's version. */
  private loadConfig(): Promise<RunConfig> {
    return this.opts.source?.load() ?? loadConfig(this.opts.file, { env: this.opts.env, logger: this.log });
  }

  /** Put a validated config in force, all or nothing (reload.ts). */
  reloadWith(next: RunConfig): Promise<ReloadResult> {
    return this.reloader.reloadWith(next);
  }

  private readonly reloader: Reloader;
  private makeReloader(): Reloader {
    return new Reloader(
      {
        config: () => this.config,
        setConfig: (c) => (this.config = c),
        build: (c) => this.buildAppliers(c),
        stopPipeline: () => this.stopPipeline(),
        retarget: (c) => this.pipeline?.retarget(c) ?? false,
        start: (from, appliers, carried) => this.startAll(from, appliers, carried),
        unchanged: (c) => {
          this.pipeline?.requestAll('reload');
          void this.deploys.reconcile(c.deploys); // level-triggered: a SIGHUP re-checks the containers
        },
        applied: (c) => {
          this.configInForce();
          void this.deploys.reconcile(c.deploys);
        },
        event: (type, message) => this.status?.event(type, message),
      },
      this.metrics,
      this.log,
    );
  }

  /** Listeners that changed between `from` and the config in force, then the pipeline. */
  private async startAll(from: RunConfig, appliers: RunApplier[], carried: Carried): Promise<void> {
    await this.startEdges();
    await this.startMetrics(from);
    await this.elb.start(from);
    await this.labels.start();
    await this.startPipeline(this.config, appliers, carried);
  }

  private async stopPipeline(): Promise<Carried> {
    const p = this.pipeline;
    this.pipeline = null;
    if (!p) return nothingCarried();
    const carried = p.carry(); // before stop(): stopping forgets the verdicts
    await p.stop();
    return carried;
  }

  /** The config hash in the status socket and `elastic_config_info`: switched only on success. */
  private configInForce(): void {
    for (const k of Object.keys(this.statusConfig)) delete this.statusConfig[k];
    Object.assign(this.statusConfig, configSummary(this.config));
    const info = this.metrics.of('configInfo');
    info.clear();
    info.set({ name: this.config.name, hash: this.config.hash }, 1);
  }

  /** The drain contract: every applier takes address:port out and waits (also a fleet host's drain for the leader). */
  drain(args: Record<string, unknown>): Promise<Record<string, unknown>> {
    return drainAll(this.appliers, args, (m) => this.status?.event('drain', m));
  }

  /** Status socket content per service (also what a fleet host publishes). */
  /** `appliers: false`: without each applier's view (HAProxy's `show stat`), e.g. for a fleet host's status every resync. */
  statusServices(opts: { appliers?: boolean } = {}): Promise<Record<string, unknown>> {
    return servicesView({ config: this.config, appliers: opts.appliers === false ? [] : this.appliers, pipeline: this.pipeline, elbState: this.elb.state, containers: this.elb.containers, deploys: this.deploys.status(), labelBackends: this.labels.backends(this.config) });
  }

  /** SIGTERM: stop watching and applying. Rules and proxies stay; the edge (in-process) stops. */
  async stop(): Promise<void> {
    // A rollout stops where it is (state `interrupted`); the next start carries on from the containers.
    this.deploysAbort.abort();
    await Promise.race([this.deploys.idle(), new Promise((r) => setTimeout(r, 10_000).unref())]);
    this.elb.stopWatch();
    this.labels.stop();
    await this.pipeline?.stop();
    for (const a of this.appliers) await a.close().catch(() => {});
    await this.elb.close();
    await this.metricsServer?.close();
    await this.statsd?.close();
    await this.status?.close();
    this.processMetricsOff?.();
    this.log.info('stopped; the data plane keeps serving');
  }
}
