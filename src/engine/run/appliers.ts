import type { BackendSet } from '../model/backend.js';
import type { Logger } from '../runtime/logger.js';
import type { StateStore } from '../runtime/state-store.js';
import type { ServiceSpec } from '../frontends/model.js';
import { buildRenderer, certSources } from '../render.js';
import { tlsDefaults, type TlsOptions } from '../frontends/tls/tls-data.js';
import { watchCertFiles } from '../frontends/tls/rotation.js';
import { newDrains, type Drains, type Renderer } from '../frontends/renderer.js';
import { renderStatus } from '../frontends/status.js';
import { drainSlot, servicesServing } from '../frontends/drain.js';
import { parseLbCheck } from '../frontends/services.js';
import { startEdge, type RunningEdge } from '../proxy.js';
import type { EdgeServe, ProxyName, ProxyServe } from './config.js';
import type { MetricsRegistry } from './metrics.js';

/**
 * The daemon hosts the other features through one small interface per applier kind. The daemon
 * owns the backend streams (one discovery watch per source, health, guardrails) and one
 * coalescing SyncRunner per applier; an applier only turns "these services now have these
 * backends" into its data plane, level-triggered, and reports status and metrics.
 *
 * `close()` never tears the data plane down: DNAT rules and the proxies stay and keep serving
 * when the daemon stops (the edge is the exception: it lives in this process).
 */
export interface SyncOutcome {
  readonly action: string; // none, runtime, reload, start, applied, refused
  readonly reason: string;
  readonly reloads?: number;
  readonly runtimeOps?: number;
}

export interface RunApplier {
  readonly name: string;
  readonly kind: 'haproxy' | 'nginx' | 'varnish' | 'map-image' | 'edge';
  /** The services it serves (for routing source updates to its runner). */
  services(): readonly string[];
  sync(backends: Readonly<Record<string, BackendSet>>, reason: string): Promise<SyncOutcome>;
  status(): Promise<Record<string, unknown>>;
  /** Given a way to ask for a pass of this applier (its runner), for changes it watches itself. */
  attach?(request: (reason: string) => void): void;
  /** The drain contract (docs/ARCHITECTURE.md): take address:port out, answer when it is idle. */
  drain?(args: { address: string; port: number; timeoutMs: number; service?: string }, signal: AbortSignal): Promise<Record<string, unknown>>;
  collect?(m: MetricsRegistry): Promise<void>;
  close(): Promise<void>;
}

export interface ApplierContext {
  readonly store: StateStore;
  readonly logger: Logger;
  readonly env?: NodeJS.ProcessEnv;
}

/** A service as a render spec (the render feature's model). */
export function toServiceSpec(name: string, s: ProxyServe): ServiceSpec {
  return { name, bind: { address: s.address, port: s.port }, mode: s.mode, balance: s.balance, check: parseLbCheck(s.lbCheck), minSlots: s.slots, ...(s.routes ? { routes: s.routes } : {}), ...(s.isDefaultService ? { isDefaultService: true } : {}), ...(s.tls ? { tls: s.tls } : {}), ...(s.page503 ? { page503: s.page503 } : {}) };
}

/**
 * HAProxy, nginx or Varnish through the render feature's engine: one proxy process for every
 * service served by that kind (config services and, for HAProxy, the ELB API's listeners).
 * The renderer is rebuilt when the set of specs changes (its slots live in the state store, so
 * backends keep their servers across a rebuild).
 */
export class RenderApplier implements RunApplier {
  readonly name: string;
  private renderer: Renderer | null = null;
  private specsKey = '';
  private specs: ServiceSpec[] = [];
  private readonly totals = { reloads: 0, runtimeOps: 0, starts: 0, refusals: 0, failures: 0 };
  private base = { ...this.totals };

  constructor(
    readonly kind: ProxyName,
    private readonly instance: string,
    private readonly ctx: ApplierContext,
    private readonly opts: { bin?: string; varnishInstance?: string; tls?: TlsOptions; frontDoor?: { address: string; port: number }; drains?: Drains } = {},
  ) {
    this.name = kind;
    this.drains = opts.drains ?? newDrains();
  }

  /** Drains outlive a rebuilt renderer and a reload (the daemon owns one set per proxy kind). */
  private readonly drains: Drains;

  setSpecs(specs: readonly ServiceSpec[]): void {
    this.specs = tlsDefaults(specs).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private readonly certWatch = new AbortController();

  /** Certificate files changed: ask for a pass (the pipeline's runner of this applier). */
  attach(request: (reason: string) => void): void {
    const sources = certSources({ tls: this.opts.tls, services: this.specs.map((spec) => ({ spec, discover: {} })) });
    if (sources) watchCertFiles(sources, () => request('certificate file changed'), this.certWatch.signal, this.ctx.logger.child('tls'));
  }

  services(): readonly string[] {
    return this.specs.map((s) => s.name);
  }

  /** The renderer being built: a drain and the first sync may ask for it at the same time. */
  private building: { key: string; renderer: Promise<Renderer> } | null = null;

  private async current(): Promise<Renderer> {
    const key = JSON.stringify(this.specs);
    if (this.renderer && key === this.specsKey) return this.renderer;
    if (this.building?.key === key) return this.building.renderer;
    const renderer = this.build(key);
    this.building = { key, renderer };
    try {
      return await renderer;
    } finally {
      if (this.building?.renderer === renderer) this.building = null;
    }
  }

  private async build(key: string): Promise<Renderer> {
    if (this.renderer) this.base = this.counters();
    this.renderer = await buildRenderer({
      instance: this.instance,
      proxy: this.kind,
      services: this.specs.map((spec) => ({ spec, discover: {} })),
      start: true,
      haproxy: this.kind === 'haproxy' ? { bin: this.opts.bin } : undefined,
      nginx: this.kind === 'nginx' ? { bin: this.opts.bin } : undefined,
      varnish: this.kind === 'varnish' ? { instance: this.opts.varnishInstance } : undefined,
      tls: this.opts.tls,
      ...(this.opts.frontDoor ? { frontDoor: this.opts.frontDoor } : {}),
      // Guardrails are applied by the daemon per service, before any applier sees a set.
      guard: { minBackends: 0, maxChangePct: 100, force: true },
      store: this.ctx.store,
      drains: this.drains,
      logger: this.ctx.logger.child(this.kind),
      env: this.ctx.env,
    });
    this.specsKey = key;
    return this.renderer;
  }

  /** Cumulative across renderer rebuilds (counters are per Renderer object). */
  counters(): typeof this.totals {
    const c = this.renderer?.counters;
    return {
      reloads: this.base.reloads + (c?.reloads ?? 0),
      runtimeOps: this.base.runtimeOps + (c?.runtimeOps ?? 0),
      starts: this.base.starts + (c?.starts ?? 0),
      refusals: this.base.refusals + (c?.refusals ?? 0),
      failures: this.base.failures + (c?.failures ?? 0),
    };
  }

  async sync(backends: Readonly<Record<string, BackendSet>>): Promise<SyncOutcome> {
    if (this.specs.length === 0 && !this.opts.frontDoor) return { action: 'none', reason: 'no services' };
    const renderer = await this.current();
    await renderer.opts.tls?.manager.prepare(renderer.opts.applier);
    const r = await renderer.sync(Object.fromEntries(this.specs.map((s) => [s.name, (backends[s.name] ?? []).map((b) => ({ ...b, service: s.name }))])));
    return { action: r.action, reason: r.reason };
  }

  async status(): Promise<Record<string, unknown>> {
    return this.renderer ? renderStatus(this.renderer) : {};
  }

  /** Runs this applier's sync now and waits for it (the daemon's runner): a drain's config pass. */
  pass: () => Promise<void> = async () => {};

  async drain(args: { address: string; port: number; timeoutMs: number; service?: string }, signal: AbortSignal) {
    // Right after a reload the new applier has not synced yet: its slots are in the state store.
    const renderer = this.renderer ?? (this.specs.length ? await this.current() : null);
    if (!renderer) return { drained: false, remaining: 0, note: `${this.kind} serves nothing yet` };
    let drained = true;
    let remaining = 0;
    for (const t of await servicesServing(renderer, args.address, args.port, args.service)) {
      const r = await drainSlot(renderer, t, { timeoutMs: args.timeoutMs, signal, pass: this.pass, logger: this.ctx.logger.child(this.kind) });
      drained &&= r.drained;
      remaining += r.sessions;
    }
    return { drained, remaining };
  }

  async collect(m: MetricsRegistry): Promise<void> {
    const c = this.counters();
    m.of('proxyReloadsTotal').set({ proxy: this.kind }, c.reloads + c.starts);
    m.of('proxyRuntimeOpsTotal').set({ proxy: this.kind }, c.runtimeOps);
    m.of('proxyFailuresTotal').set({ proxy: this.kind }, c.failures);
    const applier = this.renderer?.opts.applier;
    if (this.kind !== 'haproxy' || !applier?.stats) return;
    const stats = await applier.stats();
    const sessions = m.of('haproxySessions');
    const queue = m.of('haproxyQueue');
    const total = m.of('haproxySessionsTotal');
    for (const f of [sessions, queue, total]) f.clear();
    for (const s of stats) {
      if (s.status === 'MAINT' || !s.backend.startsWith('be_')) continue;
      const labels = { service: s.backend.slice(3), server: s.server, address: s.address };
      sessions.set(labels, s.scur);
      queue.set(labels, s.qcur);
      total.set(labels, s.stot);
    }
  }

  async close(): Promise<void> {
    // HAProxy/nginx/Varnish run daemonised: they keep serving the last applied config.
    this.certWatch.abort();
  }
}

/**
 * The edge for one service, as `proxy edge` runs it (the warm path by default): it lives in this
 * process (nodes connect to it), so it is the one part that stops with the daemon. Backends from
 * discovery are not used: nodes register themselves.
 */
export class EdgeApplier implements RunApplier {
  readonly kind = 'edge';
  readonly name: string;
  private edge: RunningEdge | null = null;

  constructor(
    private readonly service: string,
    readonly serve: EdgeServe,
    private readonly ctx: ApplierContext,
  ) {
    this.name = `edge:${service}`;
  }

  services(): readonly string[] {
    return [this.service];
  }

  async start(): Promise<void> {
    const s = this.serve;
    this.edge = await startEdge({
      address: s.address,
      listeners: [{ kind: 'tcp', port: s.port, route: this.service }],
      nodeAddress: s.nodeAddress,
      nodePort: s.nodePort,
      tokenFile: s.tokenFile,
      env: this.ctx.env,
      maxQueue: s.maxQueue,
      queueTimeoutMs: s.queueTimeoutMs,
      policy: { minInstances: s.minInstances, maxInstances: s.maxInstances, idleTimeoutMs: s.idleTimeoutMs },
      startCommand: s.command ? [...s.command] : undefined,
      warm: s.warm,
      status: false,
      logger: this.ctx.logger.child(this.name),
    });
  }

  async sync(): Promise<SyncOutcome> {
    return { action: 'none', reason: 'nodes register themselves' };
  }

  async status(): Promise<Record<string, unknown>> {
    const e = this.edge;
    return { [this.service]: { clientPort: e?.clientPorts[0] ?? null, nodePort: e?.nodePort ?? null, warm: e ? { haproxyPid: e.server.warmPid ?? null } : null, routes: e?.server.view() ?? {} } };
  }

  async drain(args: { address: string; port: number; timeoutMs: number }) {
    if (!this.edge) return { drained: false, remaining: 0 };
    return { ...(await this.edge.server.drain({ app: `${args.address}:${args.port}` }, args.timeoutMs)) };
  }

  async collect(m: MetricsRegistry): Promise<void> {
    for (const [route, v] of Object.entries(this.edge?.server.view() ?? {})) {
      const labels = { service: this.service, route };
      m.of('edgeQueued').set(labels, v.queued);
      m.of('edgeActive').set(labels, v.active);
      m.of('edgeNodes').set(labels, v.nodes);
      m.of('edgeWaitSeconds').set({ ...labels, q: 'p50' }, v.waitP50Ms / 1000);
      m.of('edgeWaitSeconds').set({ ...labels, q: 'p99' }, v.waitP99Ms / 1000);
      m.of('edgeTimeoutsTotal').set(labels, v.timeouts);
    }
  }

  async close(): Promise<void> {
    await this.edge?.close();
    this.edge = null;
  }
}
