import { discoverWatch } from '../discover.js';
import { describeError } from '../errors.js';
import type { BackendSet } from '../model/backend.js';
import type { Logger } from '../runtime/logger.js';
import type { StateStore } from '../runtime/state-store.js';
import type { RenderApplier } from './appliers.js';
import type { RunConfig } from './config.js';
import { ElbService } from './elb/actions.js';
import type { ElbState } from './elb/model.js';
import { startElbServer, type RunningElbServer } from './elb/server.js';
import { elbBackends, elbPortsTaken, elbSpecs, findContainer, forbiddenTargets, instanceHealth } from './elb-host.js';
import type { MetricsRegistry } from './metrics.js';
import { listenError } from './ports.js';

/**
 * The daemon's ELB API part: the API server, the load balancers it serves (`state`, from the
 * state store: a fleet host's is the fleet's), and the containers their instances may name. The
 * daemon hands it what it needs of the config and HAProxy (`ElbHostDeps`) and reads `state` and
 * `containers` back for the HAProxy specs, the pipeline's extra backends and the status socket.
 */
export interface ElbHostDeps {
  readonly store: StateStore;
  readonly log: Logger;
  readonly metrics: MetricsRegistry;
  readonly env?: NodeJS.ProcessEnv;
  readonly once?: boolean;
  /** The config in force. */
  config(): RunConfig;
  /** The HAProxy applier in force, if any: ELB listeners are its specs too. */
  haproxy(): RenderApplier | undefined;
  /** The ELB listeners changed: set every applier's specs again. */
  respec(): void;
  /** Ask the pipeline to sync HAProxy now. */
  requestHaproxy(reason: string): void;
  event(type: string, message: string): void;
  /** ELB listeners (from the shared store) not served here because their port is taken; [] when all are. */
  onRefused?(problems: readonly string[]): void;
}

export class DaemonElb {
  state: ElbState = { v: 1, loadBalancers: [] };
  containers: BackendSet = [];
  private server: RunningElbServer | null = null;
  private elb: ElbService | null = null;
  private containersWatch: AbortController | null = null;

  constructor(private readonly d: ElbHostDeps) {}

  get port(): number | null {
    return this.server?.port ?? null;
  }

  /** HAProxy specs of the ELB listeners under `c` (none without `api:`). */
  specs(c: RunConfig) {
    return c.api ? elbSpecs(this.state, c.api.haproxy) : [];
  }

  /** The pipeline's extra backends: ELB instances by service. */
  backends(c: RunConfig) {
    return c.api ? elbBackends(this.state, this.containers, undefined, c.api.allowTargets) : {};
  }

  /** (Re)start after a config change from `previous`: the server only when `api:` changed. */
  async start(previous?: RunConfig): Promise<void> {
    const d = this.d;
    const api = d.config().api;
    if (d.once && !api) return;
    this.elb ??= new ElbService(d.store, {
      reservedPorts: () => reservedPorts(d.config()),
      forbiddenTargets: (ids) => forbiddenTargets(ids, d.config().api?.allowTargets ?? [], this.containers),
      portsTaken: (ports) => elbPortsTaken(d.config().api?.haproxy.address ?? '127.0.0.1', d.config().proxies.haproxy.instance, ports, d.env),
      unknownInstances: async (ids) => ids.filter((id) => !/^\d{1,3}(\.\d{1,3}){3}(:\d+)?$/.test(id) && !findContainer(this.containers, id)),
      health: async (lb) => instanceHealth(lb, this.containers, await this.haproxyServers()),
      dnsName: () => d.config().api?.haproxy.address ?? '127.0.0.1',
      onChange: (state) => this.onChange(state),
      refused: (problems) => {
        if (problems.length) d.log.error('ELB listener(s) not served here: port taken on this host', { problems: problems.join('; ').slice(0, 500) });
        else d.log.info('every ELB listener served again');
        d.onRefused?.(problems);
      },
    });
    this.state = await this.elb.served();
    if (api && !this.containersWatch) {
      const first = this.watchContainers();
      if (d.once) await first;
    }
    if (d.once || JSON.stringify(previous?.api) === JSON.stringify(api)) return;
    await this.server?.close();
    this.server = null;
    if (!api) return;
    const requests = d.metrics.of('apiRequests');
    this.server = await startElbServer({ ...api, service: this.elb, logger: d.log.child('api'), onRequest: (action, code) => requests.inc({ action, code }) }).catch((err) => Promise.reject(listenError('api', api, err)));
  }

  /** Stop following containers (first in the daemon's stop: nothing re-syncs HAProxy after). */
  stopWatch(): void {
    this.containersWatch?.abort();
  }

  async close(): Promise<void> {
    await this.server?.close();
  }

  /**
   * Containers ELB instances may name: every running container (only the address is used). The
   * daemon follows them; --once waits for the first listing.
   */
  private watchContainers(): Promise<void> {
    const ac = new AbortController();
    this.containersWatch = ac;
    let listed: () => void = () => {};
    const first = new Promise<void>((r) => (listed = r));
    void (async () => {
      try {
        for await (const u of discoverWatch({ docker: { selector: { labels: [], includeUnhealthy: true, service: 'elb', port: 1 } }, logger: this.d.log.child('elb.docker') }, ac.signal)) {
          this.containers = u.backends;
          listed();
          if (this.state.loadBalancers.length) this.d.requestHaproxy('containers changed');
        }
      } catch (err) {
        if (!ac.signal.aborted) this.d.log.error('container watch for the ELB API stopped', { error: describeError(err) });
      } finally {
        listed();
      }
    })();
    return first;
  }

  private onChange(state: ElbState): void {
    this.state = state;
    const haproxy = this.d.haproxy();
    const c = this.d.config();
    if (!haproxy || !c.api) return;
    this.d.respec();
    this.d.event('api', `${state.loadBalancers.length} load balancer(s)`);
    this.d.requestHaproxy('elb api');
  }

  private async haproxyServers() {
    const h = this.d.haproxy();
    const services = h ? ((await h.status()) as Record<string, { servers?: Array<{ address: string; status: string }> }>) : {};
    return Object.entries(services).flatMap(([service, v]) =>
      (v.servers ?? []).map((s) => {
        const i = s.address.lastIndexOf(':');
        return { service, address: s.address.slice(0, i), port: Number(s.address.slice(i + 1)), status: s.status };
      }),
    );
  }
}

function reservedPorts(c: RunConfig): Set<number> {
  const ports = new Set<number>();
  for (const s of c.services) for (const p of [s.haproxy?.port, s.nginx?.port, s.varnish?.port, s.mapImage?.port, s.edge?.port, s.edge?.nodePort]) if (p) ports.add(p);
  if (c.metrics.prometheus) ports.add(c.metrics.prometheus.port);
  if (c.api) ports.add(c.api.port);
  return ports;
}
