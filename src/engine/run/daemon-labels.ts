import { discoverWatch } from '../discover.js';
import { describeError } from '../errors.js';
import type { Backend } from '../model/backend.js';
import type { ServiceSpec } from '../frontends/model.js';
import type { LabelRoutes } from '../frontends/label-routes.js';
import { LabelReader, labelDiscovery } from '../render-labels.js';
import type { Logger } from '../runtime/logger.js';
import { toServiceSpec } from './appliers.js';
import type { RunConfig } from './config.js';

/**
 * The daemon's `routes_from_labels:` part (render --routes-from-labels inside elastic run): it
 * follows the running containers labelled elastic.http.host, turns them into routed services on
 * the front-door bind (label-routes.ts, the same rules and refusals as render), and hands the
 * daemon their specs and backends, as the ELB API part does. A new host or path changes the
 * specs (a reload); another container for a known route is membership (HAProxy runtime API).
 * Label services have no source of the config: guardrails do not apply to them (a route whose
 * last container stops is gone, and its host gets the 404 page, as under render).
 */
export interface LabelHostDeps {
  readonly log: Logger;
  readonly once?: boolean;
  config(): RunConfig;
  /** The specs of an applier changed: set them again (the daemon knows all of an applier's specs). */
  respec(): void;
  /** Ask the pipeline to sync this applier now. */
  request(kind: 'haproxy' | 'nginx', reason: string): void;
}

const NONE: LabelRoutes = { specs: [], backends: {}, skipped: [], tlsIgnored: [] };

export class DaemonLabels {
  private routes: LabelRoutes = NONE;
  private watching: { key: string; ac: AbortController } | null = null;

  constructor(private readonly d: LabelHostDeps) {}

  /** Label specs for the `kind` applier under `c`. */
  specs(c: RunConfig, kind: string): ServiceSpec[] {
    return c.routesFromLabels?.proxy === kind ? this.routes.specs : [];
  }

  /** The pipeline's extra backends: containers by label service. */
  backends(c: RunConfig): Record<string, Backend[]> {
    return c.routesFromLabels ? this.routes.backends : {};
  }

  /** The bind the `kind` applier serves even before any container is labelled (its 404 page). */
  frontDoor(c: RunConfig, kind: string): { address: string; port: number } | undefined {
    const r = c.routesFromLabels;
    return r?.proxy === kind ? { address: r.serve.address, port: r.serve.port } : undefined;
  }

  /** (Re)start following containers when `routes_from_labels:` changed; --once waits for the first listing. */
  async start(): Promise<void> {
    const r = this.d.config().routesFromLabels;
    const key = JSON.stringify(r ?? null);
    if (this.watching?.key === key) return;
    this.stop();
    this.routes = NONE;
    if (!r) return;
    const ac = new AbortController();
    this.watching = { key, ac };
    const { name: _name, ...base } = toServiceSpec('labels', r.serve);
    const reader = new LabelReader({ base }, this.d.log.child('labels'));
    let listed: () => void = () => {};
    const first = new Promise<void>((res) => (listed = res));
    void (async () => {
      try {
        for await (const u of discoverWatch({ ...labelDiscovery(r.discover), logger: this.d.log.child('labels.docker') }, ac.signal)) {
          const next = reader.read(u.backends);
          const respec = JSON.stringify(next.specs) !== JSON.stringify(this.routes.specs);
          this.routes = next;
          if (respec) this.d.respec();
          listed();
          this.d.request(r.proxy, `labels: ${u.reason}`);
        }
      } catch (err) {
        if (!ac.signal.aborted) this.d.log.error('container watch for routes_from_labels stopped', { error: describeError(err) });
      } finally {
        listed();
      }
    })();
    if (this.d.once) await first;
  }

  stop(): void {
    this.watching?.ac.abort();
    this.watching = null;
  }
}
