import { discoverOnce, discoverWatch, type DiscoverOptions } from './discover.js';
import type { BackendSet } from './model/backend.js';
import { HOST_LABEL, PORT_LABEL, TLS_LABEL, labelRoutes, type LabelRoutes } from './frontends/label-routes.js';
import type { ServiceSpec } from './frontends/model.js';
import type { Renderer, RenderResult } from './frontends/renderer.js';
import { nullLogger, type Logger } from './runtime/logger.js';
import { SyncRunner } from './runtime/runner.js';
import { StatusServer } from './runtime/status.js';
import { renderStatus } from './frontends/status.js';
import { watchCertFiles } from './frontends/tls/rotation.js';
import { buildRenderer, certSources, monitorProxy, passEvent, renderOnce, watchRunnerOptions, type RenderOptions } from './render.js';

/**
 * `render --routes-from-labels --bind PORT`: every running container labelled elastic.http.host
 * is served on one front-door bind (label-routes.ts says how labels become services). The set of
 * services follows the containers: a new host or path is a structural change (HAProxy seamless
 * reload, nginx graceful reload), another container for a known route is membership only
 * (HAProxy runtime API). Before any container is labelled the bind answers the 404 page.
 */
export interface LabelRenderOptions {
  /** The render options but `services` (they come from the labels). */
  readonly render: Omit<RenderOptions, 'services' | 'frontDoor'>;
  /** Docker discovery (the selector flags narrow it: --label, --network...). */
  readonly discover: DiscoverOptions;
  /** What every label service shares: bind, balance, checks, slots. */
  readonly base: Omit<ServiceSpec, 'name' | 'routes' | 'isDefaultService'>;
}

/** Docker discovery of the containers that carry a host label (the only source labels come from). */
export function labelDiscovery(discover: DiscoverOptions): DiscoverOptions {
  const docker = discover.docker!;
  return { ...discover, docker: { ...docker, selector: { ...docker.selector, labelKeys: [HOST_LABEL], portLabel: PORT_LABEL } } };
}

/** Turn discovered containers into routes, logging each skipped container once per reason. */
export class LabelReader {
  private readonly said = new Set<string>();
  constructor(
    private readonly o: Pick<LabelRenderOptions, 'base'> & { readonly render?: Pick<RenderOptions, 'tls'> },
    private readonly log: Logger,
  ) {}

  read(found: BackendSet): LabelRoutes {
    const r = labelRoutes(found, this.o.base);
    for (const s of r.skipped) this.once(`${s.id} ${s.reason}`, () => this.log.warn(`skipping container ${s.id}: ${s.reason}; none of its labels is rendered`));
    if (!this.o.render?.tls) for (const id of r.tlsIgnored) this.once(`${id} tls`, () => this.log.warn(`container ${id}: label ${TLS_LABEL} needs a TLS bind (--tls-bind); served over http on the front door`));
    return r;
  }

  private once(key: string, say: () => void): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    say();
  }
}

const servicesOf = (r: LabelRoutes) => r.specs.map((spec) => ({ spec, discover: {} }));

export async function renderLabelsOnce(o: LabelRenderOptions, mode: { dryRun?: boolean; check?: boolean } = {}): Promise<RenderResult> {
  const log = o.render.logger ?? nullLogger;
  const found = await discoverOnce({ ...labelDiscovery(o.discover), logger: log });
  const r = new LabelReader(o, log).read(found.backends);
  return renderOnce({ ...o.render, services: servicesOf(r), frontDoor: o.base.bind, discovered: r.backends }, mode);
}

export async function renderLabelsWatch(o: LabelRenderOptions, w: { waitMinMs: number; resyncMs?: number; statusDir?: string; onResult?: (r: RenderResult) => void }, signal: AbortSignal): Promise<void> {
  const log = o.render.logger ?? nullLogger;
  const reader = new LabelReader(o, log);
  let latest: BackendSet | null = null;
  let renderer: Renderer | null = null;
  let specsKey = '';
  let passing = false;
  const runner = new SyncRunner(
    async (reason) => {
      if (!latest) return; // not listed yet
      passing = true;
      await pass(latest, reason).finally(() => (passing = false));
    },
    watchRunnerOptions(w, log, () => status),
  );
  // The status socket of render --watch (kind render, docs/render.md "Status socket"): the
  // services of the current label set; no drain actions (the services change with the labels).
  const status = new StatusServer({
    kind: 'render',
    name: o.render.instance,
    dir: w.statusDir,
    config: { proxy: o.render.proxy, routesFromLabels: true, bind: o.base.bind, wait: `${w.waitMinMs}ms` },
    services: async () => (renderer ? renderStatus(renderer) : {}),
  });
  await status.listen();
  const pass = async (found: BackendSet, reason: string) => {
    const r = reader.read(found);
    const key = JSON.stringify(r.specs);
    // The renderer renders a fixed set of services: a new set is a new renderer (its slots
    // live in the state store, so known routes keep their servers).
    if (!renderer || key !== specsKey) {
      renderer = await buildRenderer({ ...o.render, services: servicesOf(r), frontDoor: o.base.bind });
      specsKey = key;
    }
    await renderer.opts.tls?.manager.prepare(renderer.opts.applier);
    const res = await renderer.sync(r.backends, {});
    passEvent(status, res, reason);
    w.onResult?.(res);
  };
  // A proxy --start manages is restarted if it dies (the next pass starts it), as render --watch does.
  const alive = async () => (renderer?.opts.applier.alive ? renderer.opts.applier.alive() : true);
  const monitor = monitorProxy(alive, { start: o.render.start, passing: () => passing, signal }, () => {
    log.error(`${o.render.proxy} is not running; restarting it`);
    runner.request('proxy died');
  });
  // Certificates come from the cert dir / default cert only (labels name no files).
  const sources = certSources({ tls: o.render.tls, services: [] });
  if (sources) watchCertFiles(sources, () => runner.request('certificate file changed'), signal, log);
  runner.start();
  try {
    for await (const u of discoverWatch({ ...labelDiscovery(o.discover), logger: log }, signal)) {
      latest = u.backends;
      runner.request(u.reason);
    }
  } finally {
    clearInterval(monitor);
    runner.stop();
    await runner.idle();
    await status.close();
  }
}
