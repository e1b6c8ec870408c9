import { describeError, ExitCode, UserError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import { ConfigError, parseConfig, type RunConfig } from '../run/config.js';
import type { ConfigSource } from '../run/daemon.js';
import type { SingletonGate } from '../run/deploys.js';
import type { MetricsRegistry } from '../run/metrics.js';
import { FleetDrains, waitFleetDrained } from './drains.js';
import { HostStatusPublisher, hostStatus, type HostStatus } from './host-status.js';
import { Rerun } from './rerun.js';
import { Leadership } from './election.js';
import { splitHosts, textForHost } from './hosts.js';
import { Keys, type FleetStore, type Put, type StoreLease } from './store.js';
import { readCurrent, readVersion, type VersionRecord } from './versions.js';

/**
 * A fleet host: `elastic run --etcd URL --fleet NAME --host NAME`. It is the daemon's config
 * source (the fleet's current version, this host's part of it), and keeps the daemon on it:
 * watch `current`, and on any change (or every resync, or when the store comes back) re-read it
 * and, if it is new, reload the daemon through the path SIGHUP uses. A version that fails is a
 * refusal in this host's status; the daemon keeps serving what it had.
 *
 * The store going away never touches the data plane: the host keeps serving what it applied,
 * reports itself stale (metrics, log), and re-reads everything when the store answers again
 * (a full re-read, so a compacted watch history does not matter).
 */
export interface AgentOptions {
  readonly store: FleetStore;
  readonly host: string;
  readonly addresses: readonly string[];
  /** Liveness lease TTL, seconds (2-60). */
  readonly leaseTtl: number;
  /** Re-read `current` at least this often, ms (also how fast a returning store is noticed). */
  readonly resyncMs?: number;
  readonly logger?: Logger;
  readonly env?: NodeJS.ProcessEnv;
}

interface Daemon {
  reload(): Promise<{ readonly result: 'applied' | 'unchanged' | 'refused' | 'failed'; readonly error?: string }>;
  statusServices(opts?: { appliers?: boolean }): Promise<Record<string, unknown>>;
  drain(args: { address: string; port: number; timeoutMs: number }): Promise<Record<string, unknown>>;
  readonly metrics: MetricsRegistry;
  readonly current: RunConfig;
}

const HEARTBEAT_MS = 5000;

export class FleetAgent implements ConfigSource {
  private readonly log: Logger;
  private pending: VersionRecord | null = null;
  private loadError: string | null = null;
  private applied: { version: number; digest: string; at: string; rec: VersionRecord } | null = null;
  private refusal: HostStatus['refusal'] = null;
  private refusedVersion: number | null = null;
  private elbRefusal: HostStatus['elbRefusal'] = null;
  private daemon: Daemon | null = null;
  private drains: FleetDrains | null = null;
  private lease: StoreLease | null = null;
  private watches: Map<string, { cancel(): Promise<void> }> = new Map();
  private keepaliveOk = true;
  private readonly leadership: Leadership;
  private heartbeat: NodeJS.Timeout | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly syncs = new Rerun<string>((reason) => this.syncPass(reason), () => this.stopped);
  private storeUp = true;
  private staleSince: string | null = null;
  private lastStale: HostStatus['lastStale'] = null;
  private readonly publisher: HostStatusPublisher;
  private stopped = false;
  private readonly leaderListeners: Array<(leading: boolean) => void> = [];
  /** When the last watch event arrived (ms epoch): the first stage of push -> applied. */
  private notifiedAt = 0;

  constructor(private readonly opts: AgentOptions) {
    this.log = (opts.logger ?? nullLogger).child('fleet');
    this.publisher = new HostStatusPublisher(opts.store, opts.host);
    this.leadership = new Leadership(opts.store, opts.host, this.log, (leading) => this.onLeadership(leading));
  }

  get leading(): boolean {
    return this.leadership.leading;
  }

  /**
   * Singleton work while this host leads: a fenced heartbeat (`singleton/heartbeat`: who leads,
   * and that its writes still hold) and the daemon's `deploys:` (run/deploys.ts, through
   * `singleton`: they start here and are aborted the moment this host stops leading).
   */
  private onLeadership(leading: boolean): void {
    this.daemon?.metrics.gauge('elastic_fleet_leader', 'this host leads the fleet (1) or not (0)').set({}, leading ? 1 : 0);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    for (const fn of this.leaderListeners) fn(leading && !this.stopped);
    if (!leading || this.stopped) return;
    const beat = async () => {
      try {
        await this.fenced([{ key: Keys.heartbeat, value: JSON.stringify({ host: this.opts.host, at: new Date().toISOString() }) }]);
      } catch (err) {
        this.leadership.demote(`store write failed: ${describeError(err)}`);
      }
    };
    this.heartbeat = setInterval(() => void beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
    void beat();
  }

  /**
   * A write as the leader, fenced by the leadership key (election.ts); no puts: only the check,
   * before a change outside the store (a container created or removed). False: this host does
   * not lead (any more) and nothing was written. Counted in elastic_fleet_fenced_writes_total.
   */
  async fenced(puts: readonly Put[]): Promise<boolean> {
    const ok = await this.leadership.fencedPut(puts);
    this.daemon?.metrics.counter('elastic_fleet_fenced_writes_total', 'writes made as the leader, by result', ['result']).inc({ result: ok ? 'written' : 'refused' });
    if (ok && puts.length) this.metric('elastic_fleet_fenced_revision', 'store revision of the last fenced write that held here (0: none)').set({}, this.leadership.lastWritten);
    if (!ok) this.log.warn('fenced write refused: this host does not lead the fleet; nothing was written', { keys: puts.map((p) => p.key).join(' ') || '(check before a container change)' });
    return ok;
  }

  /** What the daemon's deploys need of the election: run them only here, only while leading. */
  readonly singleton: SingletonGate = {
    leading: () => this.leadership.leading && !this.stopped,
    onChange: (fn) => void this.leaderListeners.push(fn),
    guard: async (what) => {
      if (!(await this.fenced([]))) throw new UserError(`${what} refused: host ${this.opts.host} no longer leads fleet ${this.opts.store.fleet}`, 'nothing was changed; the leader carries on from the containers that exist', ExitCode.refused);
    },
    drain: (r, signal) => waitFleetDrained(this.opts.store, this.opts.host, r, signal, this.log),
  };

  get appliedVersion(): number | null {
    return this.applied?.version ?? null;
  }

  /** Before the daemon starts: the version it starts on (the store must answer, and have one). */
  async init(): Promise<void> {
    const { pointer } = await readCurrent(this.opts.store);
    if (!pointer) throw new UserError(`fleet ${this.opts.store.fleet} has no version yet`, 'push one first: elastic cluster push -c elastic.yaml --etcd URL --fleet NAME', ExitCode.config);
    this.pending = await readVersion(this.opts.store, pointer.version);
    // Refuse a second daemon under this host name before anything starts (a crashed one's key
    // goes with its lease: wait that long).
    await this.ensureLease((this.opts.leaseTtl + 2) * 1000);
  }

  /** ConfigSource: the pending version, this host's part, parsed exactly like `run -c`. */
  async load(): Promise<RunConfig> {
    const rec = this.pending;
    if (!rec) throw new UserError('no fleet version to load', 'this is a bug', ExitCode.failure);
    try {
      const text = textForHost(splitHosts(rec.text, rec.file), this.opts.host);
      const c = parseConfig(text, `${this.opts.store.fleet}@v${rec.version}`, { env: this.opts.env, logger: this.log });
      this.loadError = null; // deploys: run only on the leader (the daemon's deploys follow `singleton`)
      return c;
    } catch (err) {
      this.loadError = err instanceof ConfigError ? err.problems.join('; ') : describeError(err);
      throw err;
    }
  }

  /** The daemon started on the pending version: record it, register, follow the store. */
  async attach(daemon: Daemon): Promise<void> {
    this.daemon = daemon;
    this.markApplied(this.pending!);
    this.drains = new FleetDrains({ store: this.opts.store, drain: (a) => daemon.drain(a), leading: () => this.leading, changed: () => void this.sync('drain'), logger: this.log });
    void this.drains.start();
    this.metric('elastic_fleet_store_up', 'the fleet store answers (1) or not (0)').set({}, 1);
    this.metric('elastic_fleet_leader', 'this host leads the fleet (1) or not (0)').set({}, 0);
    await this.ensureLive().catch((err) => this.storeDown(err));
    this.timer = setInterval(() => void this.sync('resync'), this.opts.resyncMs ?? 5000);
    this.timer.unref();
    void this.sync('start');
  }

  /** Level-triggered: re-read `current`; apply it if it is new; keep lease, watch and status up. */
  sync(reason: string): Promise<void> {
    if (reason === 'SIGHUP') this.refusedVersion = null; // the operator asks: try a refused version again
    if (reason.startsWith('watch')) this.notifiedAt = Date.now();
    return this.syncs.run(reason);
  }

  private async syncPass(reason: string): Promise<void> {
    try {
      await this.ensureLive();
      await this.syncOnce(reason);
      if (this.lease && !this.stopped) await this.leadership.campaign(this.lease, this.keepaliveOk);
      this.storeBack();
    } catch (err) {
      this.storeDown(err);
    }
  }

  private async syncOnce(reason: string): Promise<void> {
    const notifiedAt = this.notifiedAt;
    const { pointer } = await readCurrent(this.opts.store);
    const readAt = { notifiedAt, currentAt: Date.now() };
    this.metric('elastic_fleet_version', 'the fleet version: current (in the store) and applied (here)', ['kind']).set({ kind: 'current' }, pointer?.version ?? 0);
    if (pointer && pointer.version !== this.applied?.version && pointer.version !== this.refusedVersion && !this.stopped) {
      const rec = await readVersion(this.opts.store, pointer.version);
      await this.apply(rec, reason, readAt);
    }
    this.metric('elastic_fleet_converged', 'this host applied the current version (1) or not (0)').set({}, pointer && pointer.version === this.applied?.version ? 1 : 0);
    await this.publish();
  }

  private async apply(rec: VersionRecord, reason: string, t: { notifiedAt: number; currentAt: number }): Promise<void> {
    const readAt = Date.now();
    this.pending = rec;
    this.loadError = null;
    let ok = false;
    let error: string | null = null;
    try {
      const r = await this.daemon!.reload();
      ok = r.result === 'applied' || r.result === 'unchanged';
      error = r.error ?? null;
    } catch (err) {
      error = describeError(err);
    }
    if (ok) {
      this.markApplied(rec);
      const seconds = (Date.now() - Date.parse(rec.pushedAt)) / 1000;
      if (seconds >= 0 && seconds < 86_400) this.histogram().observe({}, seconds);
      // Where push -> applied goes, ms from the push (docs/BENCHMARKS.md, Fleet).
      const since = (at: number) => (at >= Date.parse(rec.pushedAt) ? at - Date.parse(rec.pushedAt) : undefined);
      this.log.info('fleet version applied', { version: rec.version, reason, notifiedMs: since(t.notifiedAt), currentMs: since(t.currentAt), readMs: since(readAt), reloadedMs: since(Date.now()) });
      return;
    }
    const message = this.loadError ?? error ?? 'the daemon refused it (see its log)';
    // A later reload (the status socket's `reload`) must load what is applied, not the refused one.
    this.pending = this.applied?.rec ?? this.pending;
    this.refusedVersion = rec.version;
    this.refusal = { version: rec.version, message, at: new Date().toISOString() };
    this.daemon!.metrics.counter('elastic_fleet_refusals_total', 'fleet versions this host refused').inc({});
    this.log.error('fleet version refused; the previous one keeps serving', { version: rec.version, applied: this.applied?.version ?? null, error: message });
  }

  /** The daemon's ELB API left listeners out (or serves them all again): say so in status. */
  elbRefused(problems: readonly string[]): void {
    this.elbRefusal = problems.length ? { message: problems.join('; ').slice(0, 500), at: new Date().toISOString() } : null;
    if (this.daemon) void this.sync('elb refusal');
  }

  private markApplied(rec: VersionRecord): void {
    this.applied = { version: rec.version, digest: this.daemon!.current.hash, at: new Date().toISOString(), rec };
    this.refusal = null;
    this.refusedVersion = null;
    this.metric('elastic_fleet_version', 'the fleet version: current (in the store) and applied (here)', ['kind']).set({ kind: 'applied' }, rec.version);
  }

  /** A liveness lease and watches on `current` and `leader`; each is re-made after the store comes back. */
  private async ensureLive(): Promise<void> {
    if (this.stopped) return;
    const s = this.opts.store;
    if (!this.lease) await this.ensureLease(0);
    // `current` (a new version) and `leader` (gone: campaign now, not at the next resync).
    for (const key of [Keys.current, Keys.leader]) {
      if (this.watches.has(key)) continue;
      const { revision } = await s.list(key);
      const w = await s.watch(key, revision + 1, {
        change: () => void this.sync(`watch ${key}`),
        error: (err) => {
          this.log.debug('fleet watch ended; re-reading', { key, error: describeError(err) });
          if (this.watches.get(key) === w) this.watches.delete(key);
          void this.sync('watch ended');
        },
      });
      this.watches.set(key, w);
    }
  }

  /**
   * A liveness lease with `alive/<host>` on it, created only if absent: two daemons under one
   * host name would overwrite each other's status. Waits up to `waitMs` for a previous holder's
   * key to expire (its lease TTL).
   */
  private async ensureLease(waitMs: number): Promise<void> {
    const s = this.opts.store;
    const key = Keys.alive(this.opts.host);
    const lease = await s.lease(this.opts.leaseTtl);
    const until = Date.now() + waitMs;
    try {
      while (!(await s.txn([{ key, target: 'create', revision: 0 }], [{ key, value: JSON.stringify({ pid: process.pid }), lease }])).succeeded) {
        if (Date.now() >= until) throw new UserError(`another daemon is registered as host ${this.opts.host} in fleet ${s.fleet}`, 'give each host its own --host name (two under one name overwrite each other)', ExitCode.refused);
        await new Promise((r) => setTimeout(r, 250));
      }
    } catch (err) {
      await lease.revoke();
      throw err;
    }
    // The first missed keepalive stops singleton work (etcd3 reports `lost` only after ~2x TTL).
    lease.on('failed', () => {
      this.keepaliveOk = false;
      this.leadership.demote('lease keepalive failed');
      this.storeDown(new Error('lease keepalive failed'));
    });
    lease.on('ok', () => {
      if (this.keepaliveOk) return;
      this.keepaliveOk = true;
      void this.sync('keepalive ok');
    });
    lease.on('lost', () => {
      if (this.lease !== lease) return;
      this.leadership.demote('lease lost');
      this.lease = null;
    });
    this.lease = lease;
    this.keepaliveOk = true;
    this.publisher.reset();
  }

  private storeDown(err: unknown): void {
    if (this.stopped) return;
    if (this.storeUp) {
      this.storeUp = false;
      this.staleSince = new Date().toISOString();
      this.log.warn('fleet store unreachable: serving what was applied, stale until it answers', { applied: this.applied?.version ?? null, error: describeError(err) });
      this.metric('elastic_fleet_store_up', 'the fleet store answers (1) or not (0)').set({}, 0);
    }
  }

  private storeBack(): void {
    if (this.storeUp) return;
    this.storeUp = true;
    this.lastStale = { from: this.staleSince ?? '', to: new Date().toISOString() };
    this.log.info('fleet store answers again; caught up', { applied: this.applied?.version ?? null });
    this.metric('elastic_fleet_store_up', 'the fleet store answers (1) or not (0)').set({}, 1);
  }

  async status(): Promise<HostStatus> {
    const services = (await this.daemon?.statusServices({ appliers: false }).catch(() => ({}))) ?? {};
    const a = this.applied;
    return hostStatus({ name: this.opts.host, addresses: this.opts.addresses, appliedVersion: a?.version ?? null, digest: a?.digest ?? null, appliedAt: a?.at ?? null, refusal: this.refusal, elbRefusal: this.elbRefusal, lastStale: this.lastStale, drains: this.drains?.status() ?? {}, services });
  }

  /** Write this host's status when it changed (not on every resync: the store is shared). */
  private async publish(): Promise<void> {
    await this.publisher.publish(await this.status());
  }

  private metric(name: string, help: string, labels: string[] = []) {
    // Before the daemon runs (init) there is no registry yet: nothing to report to.
    return this.daemon ? this.daemon.metrics.gauge(name, help, labels) : { set: () => {} };
  }
  private histogram = () => this.daemon!.metrics.histogram('elastic_fleet_apply_seconds', 'seconds from a push to this host applying it', [], [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);

  /** Stop following the store; the daemon (and the data plane) are stopped by the caller. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.leadership.demote('stopping'); // singleton work ends before the lease (and the lead) goes
    if (this.timer) clearInterval(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.syncs.inFlight?.catch(() => {});
    await this.drains?.stop();
    for (const w of this.watches.values()) await w.cancel();
    await this.lease?.revoke().catch(() => {});
  }
}
