import { describeError } from '../errors.js';
import type { Logger } from '../runtime/logger.js';
import { Keys, type FleetStore, type Put, type StoreLease } from './store.js';

/**
 * One leader per fleet for singleton work: the `leader` key, created on the candidate's lease
 * with a compare-and-swap (absent -> ours). The key's create revision is the fencing token:
 * every write the leader makes in the store is a txn that holds only while the key it created
 * is still there, so a leader that was paused past its lease (SIGSTOP, a long GC, a partition)
 * and wakes up believing it leads has each write refused.
 *
 * It steps down at the first missed keepalive (`demote`), not when the lease is reported lost
 * (etcd3 says so only after about 2x TTL). When keepalives succeed again and the key is still
 * the one it created, it leads again; if the lease expired meanwhile, another host has the key.
 */
export class Leadership {
  private token: number | null = null;
  private lease: StoreLease | null = null;
  private leadingNow = false;

  constructor(
    private readonly store: FleetStore,
    private readonly host: string,
    private readonly log: Logger,
    private readonly changed: (leading: boolean) => void,
  ) {}

  get leading(): boolean {
    return this.leadingNow;
  }

  /** Try to lead (or confirm we still do) on `lease`; call on every sync while the store answers. */
  async campaign(lease: StoreLease, keepaliveOk: boolean): Promise<void> {
    if (this.lease !== lease) {
      // A new lease: whatever we held died with the old one.
      this.lease = lease;
      this.token = null;
      this.set(false, 'lease renewed');
    }
    const kv = await this.store.get(Keys.leader);
    if (kv && this.token !== null && kv.createRevision === this.token) {
      if (keepaliveOk) this.set(true, 'still the leader');
      return;
    }
    if (this.token !== null) {
      this.token = null;
      this.set(false, 'the leader key is no longer ours');
    }
    if (kv || !keepaliveOk) return;
    const res = await this.store.txn([{ key: Keys.leader, target: 'create', revision: 0 }], [{ key: Keys.leader, value: JSON.stringify({ host: this.host, since: new Date().toISOString() }), lease }]);
    if (res.succeeded) {
      this.token = res.revision; // the key's create revision: it was created by this txn
      this.set(true, 'elected');
    }
  }

  /** Stop singleton work now (a keepalive failed); the key may still be ours: campaign() decides. */
  demote(reason: string): void {
    this.set(false, reason);
  }

  /**
   * A write that holds only while this host leads; false (and demoted) when it does not. No puts:
   * only the check, in the store (before a change outside it, e.g. a container created).
   */
  async fencedPut(puts: readonly Put[]): Promise<boolean> {
    if (this.token === null || !this.leadingNow) return false;
    const res = await this.store.txn([{ key: Keys.leader, target: 'create', revision: this.token }], puts);
    if (!res.succeeded) {
      this.token = null;
      this.set(false, 'fenced write refused: another host leads');
    } else if (puts.length) this.lastWritten = res.revision;
    return res.succeeded;
  }

  /** The store revision of the last fenced write that held (0: none yet). */
  lastWritten = 0;

  private set(leading: boolean, reason: string): void {
    if (leading === this.leadingNow) return;
    this.leadingNow = leading;
    if (leading) this.log.info('fleet leader: singleton work runs here', { reason });
    else this.log.warn('not the fleet leader: singleton work stopped here', { reason });
    try {
      this.changed(leading);
    } catch (err) {
      this.log.error('leadership change handler failed', { error: describeError(err) });
    }
  }
}
