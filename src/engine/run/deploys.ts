import { deployUp, type DeployContext, type DeployResult } from '../deploy.js';
import { buildSpec } from '../deploy/options.js';
import type { RolloutEvent } from '../deploy/rollout.js';
import type { DeploySpec } from '../deploy/spec.js';
import { describeError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import type { StateStore } from '../runtime/state-store.js';
import type { DeployConfig } from './config.js';

/**
 * The config's `deploys:` run by the daemon: each one reconciled through deploy's engine
 * (`deployUp`: create, scale, rolling update with health gate, drain and rollback) at start, on
 * every accepted SIGHUP, and under --once. Deploys are independent: one failing is logged and
 * shown in status, and never stops the daemon or the others. Reconciles never overlap: a reload
 * during a rollout queues one more pass (coalesced) that starts when the running one is done.
 *
 * A fleet host (`singleton`) runs them only while it leads the fleet: a host that does not lead
 * keeps them `standby`; becoming leader reconciles them (a rollout another leader left halfway
 * carries on from the containers and the deploy state in the fleet store); losing the lead aborts
 * the pass at once, and every container change is first checked against the store (`guard`).
 */
export interface DeployStatus {
  readonly service: string;
  readonly image: string;
  readonly desired: number;
  /** pending (queued), reconciling, ok, failed; standby: another fleet host leads and runs it. */
  state: 'pending' | 'reconciling' | 'ok' | 'failed' | 'standby';
  /** deploy's own phase (steady, rolling, rolling back, rolled back, interrupted, failed). */
  phase: string | null;
  message: string | null;
  revision: string | null;
  error: string | null;
  started: string | null;
  finished: string | null;
  replicas: Record<string, { name: string; revision: string; phase: string; detail?: string }>;
  last: Pick<DeployResult, 'created' | 'removed' | 'failed' | 'rolledBack'> | null;
  /** The last drain of an old replica, per load balancer (a fleet: `host.<name>` per other host). */
  lastDrain?: { id: string; at: string; outcomes: ReadonlyArray<{ socket: string; outcome: string; remaining?: number; detail?: string }> };
}

export interface DaemonDeploysOptions {
  readonly store: StateStore;
  readonly logger?: Logger;
  readonly env?: NodeJS.ProcessEnv;
  readonly runDir?: string;
  readonly signal: AbortSignal;
  /** Timeline events of the daemon's status socket. */
  readonly event?: (type: string, message: string, service?: string) => void;
  /** A deploy finished a pass (containers changed): the appliers may want a sync. */
  readonly changed?: (service: string) => void;
  /** A fleet host: deploys run only while it leads (fleet/agent.ts). */
  readonly singleton?: SingletonGate;
}

/** Singleton work in a fleet: what the deploys need of the fleet election. */
export interface SingletonGate {
  leading(): boolean;
  /** Called on every change of leadership. */
  onChange(fn: (leading: boolean) => void): void;
  /** Before a container change: rejects (refused) unless this host still leads (checked in the store). */
  guard(what: string): Promise<void>;
  /** Before an old replica stops: every other live host drains it, bounded (fleet/drains.ts). */
  drain?: NonNullable<DeployContext['fleetDrain']>;
}

/** `deploys:` entry -> the spec `elastic deploy` builds from its flags (same checks, same defaults). */
export function toDeploySpec(d: DeployConfig): DeploySpec {
  const h = d.health;
  return buildSpec({
    image: d.image,
    name: d.service,
    replicas: d.replicas,
    port: d.port === undefined ? undefined : String(d.port),
    env: [...d.env],
    network: d.network,
    'health-http': h === 'http' ? '/' : h.startsWith('http:') ? h.slice('http:'.length) : undefined,
    'health-tcp': h === 'tcp' || undefined,
    'no-health': h === 'none' || undefined,
    'max-surge': d.maxSurge,
    'max-unavailable': d.maxUnavailable,
  });
}

export class DaemonDeploys {
  private readonly states = new Map<string, DeployStatus>();
  private running: Promise<void> | null = null;
  private queued: readonly DeployConfig[] | null = null;
  private readonly log: Logger;
  /** The last list asked for (a host that becomes leader reconciles it). */
  private wanted: readonly DeployConfig[] = [];
  /** Aborted when this host stops leading (with the daemon's signal: either stops the pass). */
  private term = new AbortController();

  constructor(private readonly opts: DaemonDeploysOptions) {
    this.log = (opts.logger ?? nullLogger).child('deploy');
    opts.singleton?.onChange((leading) => this.onLeadership(leading));
  }

  /** Deploys may run here now: not stopping, and leading when in a fleet. */
  private get mayRun(): boolean {
    return !this.opts.signal.aborted && (this.opts.singleton?.leading() ?? true);
  }

  private onLeadership(leading: boolean): void {
    if (!leading) {
      this.term.abort();
      for (const st of this.states.values()) if (st.state !== 'reconciling') st.state = 'standby';
      if (this.states.size) this.log.warn('not the fleet leader: deploys stopped here (the leader carries on from the containers)');
      return;
    }
    this.term = new AbortController();
    if (this.wanted.length) this.log.info('fleet leader: deploys run here', { deploys: this.wanted.map((d) => d.service).join(' ') });
    void this.reconcile(this.wanted);
  }

  /**
   * Reconcile every deploy of `deploys` (in parallel). Resolves when this pass (or the pass it was
   * coalesced into) is done; never rejects: failures are in status().
   */
  reconcile(deploys: readonly DeployConfig[]): Promise<void> {
    this.wanted = deploys;
    const idle = this.opts.singleton && !this.opts.singleton.leading() ? 'standby' : 'pending';
    for (const d of deploys) {
      const old = this.states.get(d.service);
      this.states.set(d.service, { ...(old ?? emptyStatus(d)), service: d.service, image: d.image, desired: d.replicas, state: old?.state === 'reconciling' ? 'reconciling' : idle });
    }
    for (const name of [...this.states.keys()]) {
      if (!deploys.some((d) => d.service === name) && this.states.get(name)!.state !== 'reconciling') {
        this.states.delete(name);
        this.log.warn(`deploy ${name} left the config: its containers are left running`, { service: name, hint: `remove them with elastic deploy rm ${name}` });
        this.opts.event?.('deploy', `${name} left the config; its containers keep running (elastic deploy rm ${name})`, name);
      }
    }
    if (this.running) {
      this.queued = deploys;
      return this.running;
    }
    if (!this.mayRun) return Promise.resolve();
    const pass = async (list: readonly DeployConfig[]) => {
      let next: readonly DeployConfig[] | null = list;
      while (next && this.mayRun) {
        this.queued = null;
        await Promise.all(next.map(async (d) => this.one(d)));
        next = this.queued;
      }
    };
    this.running = pass(deploys).finally(() => (this.running = null));
    return this.running;
  }

  /** Wait for the pass in flight (stop). */
  async idle(): Promise<void> {
    await this.running;
  }

  status(): Record<string, DeployStatus> {
    return Object.fromEntries([...this.states.entries()].map(([k, v]) => [k, { ...v, replicas: { ...v.replicas } }]));
  }

  private async one(d: DeployConfig): Promise<void> {
    const st = this.states.get(d.service) ?? emptyStatus(d);
    this.states.set(d.service, st);
    Object.assign(st, { state: 'reconciling', error: null, started: new Date().toISOString(), finished: null });
    const log = this.log.child(d.service);
    const signal = AbortSignal.any([this.opts.signal, this.term.signal]);
    const gate = this.opts.singleton;
    try {
      const spec = toDeploySpec(d);
      log.info(`reconciling ${d.service}: ${d.replicas} replica(s) of ${d.image}`);
      const r = await deployUp(spec, {
        env: this.opts.env,
        store: this.opts.store,
        logger: log,
        signal,
        runDir: this.opts.runDir,
        guard: gate && ((what) => gate.guard(what)),
        fleetDrain: gate?.drain,
        onEvent: (e) => this.onEvent(st, e, log),
      });
      Object.assign(st, { state: 'ok', phase: r.phase, message: r.message, revision: r.revision, last: { created: r.created, removed: r.removed, failed: r.failed, rolledBack: r.rolledBack } });
      st.replicas = Object.fromEntries(r.replicas.map((x) => [x.id, { name: x.name, revision: x.revision, phase: x.phase, detail: x.detail }]));
      const what = `${r.replicas.length} replica(s) of ${r.revision}${r.created || r.removed ? ` (+${r.created} -${r.removed})` : ''}${r.rolledBack ? ', rolled back' : ''}`;
      log.info(`${d.service}: ${what}`);
      this.opts.event?.('deploy', `${d.service}: ${what}`, d.service);
    } catch (err) {
      const msg = describeError(err);
      Object.assign(st, { state: signal.aborted && !this.opts.signal.aborted ? 'standby' : 'failed', error: msg });
      if (!signal.aborted) {
        log.error(`deploy ${d.service} failed; the daemon and the other services carry on`, { error: msg });
        this.opts.event?.('deploy-failed', `${d.service}: ${msg}`, d.service);
      }
    } finally {
      st.finished = new Date().toISOString();
      this.opts.changed?.(d.service);
    }
  }

  private onEvent(st: DeployStatus, e: RolloutEvent, log: Logger): void {
    if (e.type === 'drain') {
      st.lastDrain = { id: e.id, at: new Date().toISOString(), outcomes: e.outcomes };
      const short = e.outcomes.filter((o) => o.outcome !== 'drained' && o.outcome !== 'not ours');
      // A host that did not answer (dead, cut off) or could not drain: the replica stops anyway.
      if (short.length) log.warn(`replica ${e.id} stops without every load balancer drained`, { service: st.service, id: e.id, outcomes: short.map((o) => `${o.socket}: ${o.outcome}${o.detail ? ` (${o.detail})` : ''}`).join('; ') });
    } else if (e.type === 'phase') {
      st.phase = e.phase;
      st.message = e.message;
    } else if (e.type === 'replica') {
      // Which host made each container change (a fleet: only ever the leader).
      const change = { creating: 'created', stopping: 'stopping', removed: 'removed' }[e.phase as string];
      if (change) log.info(`replica ${e.name} ${change}`, { service: st.service, id: e.id, revision: e.revision, reason: e.detail });
      if (e.phase === 'ready') log.info(`replica ${e.name} passed its health gate`, { service: st.service, id: e.id, revision: e.revision, gate: e.detail });
      if (e.phase === 'removed') delete st.replicas[e.id];
      else st.replicas[e.id] = { name: e.name, revision: e.revision, phase: e.phase, detail: e.detail };
      // A replica came or went: let the appliers look now rather than at the next resync.
      if (e.phase === 'ready' || e.phase === 'removed') this.opts.changed?.(st.service);
    }
  }
}

function emptyStatus(d: DeployConfig): DeployStatus {
  return { service: d.service, image: d.image, desired: d.replicas, state: 'pending', phase: null, message: null, revision: null, error: null, started: null, finished: null, replicas: {}, last: null };
}
