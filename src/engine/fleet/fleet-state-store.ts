import { describeError, ExitCode, UserError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import { updateState, type StateStore } from '../runtime/state-store.js';
import { Keys, type FleetStore, type Put } from './store.js';

/**
 * A fleet host's state store: the fleet-wide keys (the ELB API's `elb`) in the fleet store under
 * `state/<key>`, every other key in the host's own file store. The daemon sees one StateStore.
 *
 * - update: compare-and-swap on the key's mod revision; on a conflict (another host wrote in
 *   between) the change runs again on the newer value, so two hosts mutating at once both land.
 * - watch: follows the key in the store; a dropped watch is re-made and reported as a change
 *   (level-triggered: the caller re-reads, so a change missed meanwhile is not lost).
 * - the store unreachable: get answers the last value read or written here (the host keeps
 *   serving it); a write fails (nothing changes anywhere).
 * - fenced keys (deploy state, `deploy-<service>`: only the fleet leader writes it): every write
 *   is the leader's fenced txn (election.ts); a host that does not lead has it refused and
 *   nothing is written.
 */
const MAX_ATTEMPTS = 20;
const REWATCH_MS = 1000;

export interface StateFence {
  /** Keys only the leader writes. */
  readonly keys: (key: string) => boolean;
  /** The leader's fenced write (fleet/agent.ts fenced): false when this host does not lead. */
  readonly write: (puts: readonly Put[]) => Promise<boolean>;
}

export class FleetStateStore implements StateStore {
  private readonly last = new Map<string, unknown>();
  private readonly watches = new Set<{ stop(): void }>();
  private readonly log: Logger;
  private readonly isShared: (key: string) => boolean;

  /** `shared`: the fleet-wide keys (a set, or a test for families of keys such as `deploy-*`). */
  constructor(
    private readonly fleet: FleetStore,
    private readonly local: StateStore,
    private readonly shared: ReadonlySet<string> | ((key: string) => boolean),
    logger?: Logger,
    private readonly fence?: StateFence,
  ) {
    this.log = (logger ?? nullLogger).child('fleet.state');
    this.isShared = typeof shared === 'function' ? shared : (k) => shared.has(k);
  }

  get location(): string {
    return this.local.location;
  }

  /** `valid`: the value's shape (a local key: the file store checks it; a shared key: a wrong shape is refused). */
  async get<T>(key: string, valid?: (v: unknown) => v is T): Promise<T | undefined> {
    if (!this.isShared(key)) return (this.local.get as (k: string, v?: (v: unknown) => v is T) => Promise<T | undefined>).call(this.local, key, valid);
    let value: T | undefined;
    try {
      value = (await this.read<T>(key)).value;
    } catch (err) {
      if (!this.last.has(key)) throw err;
      this.log.debug('fleet store unreachable: answering the last state read', { key, error: describeError(err) });
      return this.last.get(key) as T | undefined;
    }
    if (value !== undefined && valid && !valid(value)) throw new UserError(`fleet state ${key} in the store has an unexpected shape`, `inspect it: etcdctl get /elastic/${this.fleet.fleet}/${Keys.state(key)}`, ExitCode.config);
    return value;
  }

  async put<T>(key: string, value: T): Promise<void> {
    if (!this.isShared(key)) return this.local.put(key, value);
    const put = { key: Keys.state(key), value: JSON.stringify(value) };
    if (this.fence?.keys(key)) {
      if (!(await this.fence.write([put]))) throw new UserError(`fleet state ${key} not written: this host does not lead fleet ${this.fleet.fleet}`, 'only the leader writes it; nothing was changed', ExitCode.refused);
    } else await this.fleet.put(put);
    this.last.set(key, value);
  }

  async delete(key: string): Promise<void> {
    if (!this.isShared(key)) return this.local.delete(key);
    // Kept as an empty value: a fleet key is never removed, so watchers see a change (not a gap).
    await this.put(key, null);
  }

  async keys(): Promise<string[]> {
    const local = (await this.local.keys()).filter((k) => !this.isShared(k));
    if (typeof this.shared !== 'function') return [...new Set([...local, ...this.shared])];
    const inStore = await this.fleet.list(Keys.state('')).then(
      (r) => r.kvs.filter((kv) => kv.value !== 'null').map((kv) => kv.key.slice(Keys.state('').length)),
      () => [...this.last.entries()].filter(([, v]) => v !== undefined && v !== null).map(([k]) => k), // the store unreachable: what was seen
    );
    return [...new Set([...local, ...inStore.filter(this.isShared)])];
  }

  async update<T>(key: string, fn: (current: T | undefined) => T | undefined | Promise<T | undefined>): Promise<T | undefined> {
    if (!this.isShared(key)) return updateState(this.local, key, fn);
    if (this.fence?.keys(key)) {
      // One writer (the leader), fenced: no compare-and-swap needed.
      const { value: before } = await this.read<T>(key);
      const after = await fn(before);
      if (after !== before && after !== undefined) await this.put(key, after);
      return after;
    }
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const { value: before, modRevision } = await this.read<T>(key);
      const after = await fn(before);
      if (after === before || after === undefined) return after;
      // modRevision 0: the key is absent, so "created by nobody else meanwhile" is the guard.
      const guard = modRevision ? { key: Keys.state(key), target: 'mod' as const, revision: modRevision } : { key: Keys.state(key), target: 'create' as const, revision: 0 };
      const r = await this.fleet.txn([guard], [{ key: Keys.state(key), value: JSON.stringify(after) }]);
      if (r.succeeded) {
        this.last.set(key, after);
        return after;
      }
      this.log.debug('fleet state changed by another host meanwhile; applying the change again', { key, attempt });
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 20 * attempt)));
    }
    throw new UserError(`fleet state ${key} kept changing under ${MAX_ATTEMPTS} attempts to write it`, 'retry the request', ExitCode.unavailable);
  }

  watch(key: string, changed: () => void): () => void {
    if (!this.isShared(key)) return () => {};
    let stopped = false;
    let current: { cancel(): Promise<void> } | null = null;
    let timer: NodeJS.Timeout | null = null;
    const again = () => {
      if (stopped || timer) return;
      timer = setTimeout(() => {
        timer = null;
        void start();
      }, REWATCH_MS);
      timer.unref();
    };
    const start = async () => {
      try {
        const { revision } = await this.fleet.list(Keys.state(key));
        if (stopped) return;
        current = await this.fleet.watch(Keys.state(key), revision + 1, {
          change: () => changed(),
          error: (err) => {
            this.log.debug('fleet state watch ended; re-made', { key, error: describeError(err) });
            current = null;
            again();
          },
        });
        if (stopped) void current.cancel();
        changed(); // anything written before the watch began (or while it was down)
      } catch (err) {
        this.log.debug('fleet state watch not made; retrying', { key, error: describeError(err) });
        again();
      }
    };
    void start();
    const w = {
      stop: () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        void current?.cancel();
      },
    };
    this.watches.add(w);
    return () => {
      w.stop();
      this.watches.delete(w);
    };
  }

  /** Stop every watch (the fleet store itself is closed by its owner). */
  close(): void {
    for (const w of this.watches) w.stop();
    this.watches.clear();
  }

  private async read<T>(key: string): Promise<{ value: T | undefined; modRevision: number }> {
    const kv = await this.fleet.get(Keys.state(key));
    let value: T | undefined;
    try {
      value = kv ? ((JSON.parse(kv.value) as T | null) ?? undefined) : undefined;
    } catch {
      throw new UserError(`fleet state ${key} in the store is not valid JSON`, `inspect it: etcdctl get /elastic/${this.fleet.fleet}/${Keys.state(key)}`, ExitCode.config);
    }
    this.last.set(key, value);
    return { value, modRevision: kv?.modRevision ?? 0 };
  }
}
