import { isIP } from 'node:net';
import type { DrainOutcome } from '../deploy/drain.js';
import { stateKey, type DeployState, type DrainingReplica } from '../deploy/state.js';
import { describeError } from '../errors.js';
import { isIdent, printable } from '../model/validate.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import type { HostStatus } from './host-status.js';
import { Rerun } from './rerun.js';
import { Keys, type FleetStore, type KeyValue } from './store.js';

/**
 * The fleet-wide drain (docs/fleet.md, "deploys: on the leader"). Before the leader stops an old
 * replica it lists it in the deploy state (`draining`, a fenced write). Every other host follows
 * the deploy states (`state/deploy-*`), drains each listed replica from its own load balancers
 * through its daemon's drain (the status socket's `drain`: every applier that serves it) and
 * publishes the outcome in its host status (`drains[id]`). The leader waits, at most the
 * replica's drain timeout (plus a grace), for every live host to report before the container
 * stops; a dead host is not waited for, one that stays silent is a `no answer` in deploy status.
 */
export interface HostDrain {
  readonly service: string;
  readonly endpoint: string;
  readonly state: 'draining' | 'drained' | 'timeout' | 'failed';
  readonly remaining?: number;
  readonly reason?: string;
  readonly at: string;
}

/** Past the drain timeout: a host's own drain gives up at the timeout, its status write follows. */
const GRACE_MS = 3000;
const REWATCH_MS = 1000;
const DEPLOY_PREFIX = Keys.state(stateKey(''));

/** A host's side: drain what any deploy state lists as draining, say how it went. */
export class FleetDrains {
  private readonly drains = new Map<string, HostDrain>();
  private watch: { cancel(): Promise<void> } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly scans = new Rerun<void>(() => this.scanOnce(), () => this.stopped);
  private stopped = false;
  private readonly log: Logger;

  constructor(
    private readonly o: {
      store: FleetStore;
      /** The daemon's drain (run/daemon-status.ts drainAll over its appliers). */
      drain: (args: { address: string; port: number; timeoutMs: number }) => Promise<Record<string, unknown>>;
      /** The leader drains through its own status sockets (deploy/drain.ts): not twice here. */
      leading: () => boolean;
      /** The drains changed: publish this host's status. */
      changed: () => void;
      logger?: Logger;
    },
  ) {
    this.log = (o.logger ?? nullLogger).child('drain');
  }

  status(): NonNullable<HostStatus['drains']> {
    return Object.fromEntries(this.drains);
  }

  async start(): Promise<void> {
    if (this.stopped) return;
    try {
      const { revision } = await this.o.store.list(DEPLOY_PREFIX);
      this.watch = await this.o.store.watch(DEPLOY_PREFIX, revision + 1, {
        change: () => void this.scan(),
        error: () => {
          this.watch = null;
          this.retry();
        },
      });
      void this.scan(); // anything listed before the watch began
    } catch (err) {
      this.log.debug('deploy state watch not made; retrying', { error: describeError(err) });
      this.retry();
    }
  }

  private retry(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => ((this.timer = null), void this.start()), REWATCH_MS);
    this.timer.unref();
  }

  /** Level-triggered: re-read every deploy state, start a drain for each new listed replica. */
  scan(): Promise<void> {
    return this.scans.run();
  }

  private async scanOnce(): Promise<boolean> {
    const listed = await this.listed().catch(() => null);
    if (!listed) return false; // the store is away: keep what is here, the watch's error re-reads
    let changed = false;
    for (const id of [...this.drains.keys()]) if (!listed.has(id)) changed = this.drains.delete(id);
    for (const [id, d] of listed) if (!this.drains.has(id) && !this.o.leading()) (changed = true), this.run(d.service, d.replica);
    if (changed) this.o.changed();
    return true;
  }

  private async listed(): Promise<Map<string, { service: string; replica: DrainingReplica }>> {
    return drainingIn((await this.o.store.list(DEPLOY_PREFIX)).kvs);
  }

  private run(service: string, r: DrainingReplica): void {
    const endpoint = `${r.address}:${r.port}`;
    const timeoutMs = Math.min(Math.max(Number(r.timeoutMs) || 30_000, 1000), 600_000);
    this.drains.set(r.id, { service, endpoint, state: 'draining', at: new Date().toISOString() });
    this.log.info(`draining replica ${r.id} (${endpoint}) of ${service} for the fleet leader`, { service, id: r.id });
    void this.o
      .drain({ address: r.address, port: r.port, timeoutMs })
      .then(
        (res): HostDrain => {
          const remaining = Number(res.remaining) || 0;
          // drained false with nothing left: an applier that serves nothing yet; nothing to wait for.
          return { service, endpoint, state: res.drained !== false || remaining === 0 ? 'drained' : 'timeout', remaining, at: new Date().toISOString() };
        },
        (err: unknown): HostDrain => ({ service, endpoint, state: 'failed', reason: printable(describeError(err), 200), at: new Date().toISOString() }),
      )
      .then((out) => {
        if (this.stopped || this.drains.get(r.id)?.state !== 'draining') return;
        this.drains.set(r.id, out);
        this.log[out.state === 'drained' ? 'info' : 'warn'](`replica ${r.id} (${endpoint}) of ${service}: ${out.state}`, { service, id: r.id, remaining: out.remaining, reason: out.reason });
        this.o.changed();
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.watch?.cancel().catch(() => {});
  }
}

/**
 * The leader's side: wait until every other live host that reports drains (a host on an older
 * elastic does not) has drained `r`, at most its drain timeout plus a grace. One outcome per such
 * host (`host.<name>`); a host that was not alive is not waited for.
 */
export async function waitFleetDrained(store: FleetStore, self: string, r: DrainingReplica, signal?: AbortSignal, logger?: Logger): Promise<DrainOutcome[]> {
  const log = logger ?? nullLogger;
  const until = Date.now() + r.timeoutMs + GRACE_MS;
  let wake: (() => void) | null = null;
  // The watch only wakes the loop early; without it the loop reads every second.
  const w = await store
    .list(Keys.hostsPrefix)
    .then(({ revision }) => store.watch(Keys.hostsPrefix, revision + 1, { change: () => wake?.(), error: () => {} }))
    .catch(() => null);
  let last: { pending: string[]; outcomes: DrainOutcome[] } | null = null;
  let error: string | null = null;
  try {
    for (;;) {
      try {
        const [hosts, alive] = await Promise.all([store.list(Keys.hostsPrefix), store.list(Keys.alivePrefix)]);
        last = fleetDrainView(self, r, hosts.kvs, alive.kvs);
        error = null;
      } catch (err) {
        error = describeError(err); // the store away: keep waiting (bounded); the stop's own store check decides
      }
      if ((last && last.pending.length === 0 && !error) || Date.now() >= until || signal?.aborted === true) {
        if (error) log.warn(`drain ${r.address}:${r.port}: the other hosts' drains could not be read`, { error });
        const out = last?.outcomes ?? [{ socket: 'fleet', outcome: 'no answer', detail: printable(error ?? 'not read', 120) }];
        for (const o of out) if (o.outcome !== 'drained') log.warn(`drain ${r.address}:${r.port} at ${o.socket}: ${o.outcome}`, { detail: o.detail, remaining: o.remaining });
        return out;
      }
      await new Promise<void>((res) => {
        const done = () => {
          clearTimeout(t);
          signal?.removeEventListener('abort', done);
          res();
        };
        const t = setTimeout(done, Math.min(1000, Math.max(0, until - Date.now())));
        wake = done;
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  } finally {
    await w?.cancel().catch(() => {});
  }
}

/**
 * Pure: the other hosts' drains of `r` as the store holds them. `pending`: live hosts that report
 * drains and have not finished this one; `outcomes`: one per host that reports drains, a host
 * without its lease (dead, cut off) as `no answer` (it is not waited for) unless it drained.
 */
export function fleetDrainView(self: string, r: DrainingReplica, hosts: readonly KeyValue[], alive: readonly KeyValue[]): { pending: string[]; outcomes: DrainOutcome[] } {
  const live = new Set(alive.map((kv) => kv.key.slice(Keys.alivePrefix.length)));
  const all = hosts
    .map((kv) => {
      try {
        return JSON.parse(kv.value) as HostStatus;
      } catch {
        return null;
      }
    })
    .filter((h): h is HostStatus => h !== null && h.name !== self && h.drains !== undefined && h.drains !== null);
  const views = all.filter((h) => live.has(h.name));
  const dead = all.filter((h) => !live.has(h.name) && h.drains![r.id]?.state !== 'drained');
  return {
    pending: views.filter((h) => (h.drains![r.id]?.state ?? 'draining') === 'draining').map((h) => h.name),
    outcomes: [...views.map((h) => outcomeOf(h.name, h.drains![r.id], r.timeoutMs)), ...dead.map((h): DrainOutcome => ({ socket: `host.${h.name}`, outcome: 'no answer', detail: 'host not alive (no lease): not waited for' }))],
  };
}

/** Pure: the replicas every deploy state lists as draining (checked: the store is shared), by id. */
export function drainingIn(kvs: readonly KeyValue[]): Map<string, { service: string; replica: DrainingReplica }> {
  const out = new Map<string, { service: string; replica: DrainingReplica }>();
  for (const kv of kvs) {
    let s: DeployState | null = null;
    try {
      s = JSON.parse(kv.value) as DeployState | null;
    } catch {
      continue;
    }
    if (typeof s?.service !== 'string' || !isIdent(s.service) || !Array.isArray(s.draining)) continue;
    for (const r of s.draining) {
      if (typeof r?.id === 'string' && /^[0-9a-f]{12,64}$/.test(r.id) && typeof r.address === 'string' && isIP(r.address) && Number.isInteger(r.port) && r.port > 0 && r.port < 65536) out.set(r.id, { service: s.service, replica: r });
    }
  }
  return out;
}

function outcomeOf(host: string, d: HostDrain | undefined, timeoutMs: number): DrainOutcome {
  const socket = `host.${host}`;
  if (!d) return { socket, outcome: 'no answer', detail: `did not report within ${timeoutMs + GRACE_MS} ms` };
  if (d.state === 'drained') return { socket, outcome: 'drained', remaining: d.remaining };
  if (d.state === 'draining') return { socket, outcome: 'no answer', detail: `still draining after ${timeoutMs + GRACE_MS} ms` };
  return { socket, outcome: d.state, remaining: d.remaining, detail: d.reason };
}
