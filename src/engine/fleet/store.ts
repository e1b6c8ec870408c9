import { ExitCode, UserError } from '../errors.js';

/**
 * The fleet store: the small interface elastic needs from a distributed store (etcd today), so
 * nothing above it knows the client library. Every key is relative to `/elastic/<fleet>/`; the
 * implementation adds that prefix, so one fleet can never read or write another's keys.
 *
 * Revisions are etcd's: one counter for the whole store, raised by every write. A key's
 * `modRevision` is the revision of its last write, `createRevision` of its creation (0: absent),
 * which is what compare-and-swap and fencing compare against.
 */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision: number;
}

/** A txn guard: the key's create or mod revision equals `revision` (create 0 = the key is absent). */
export interface Compare {
  readonly key: string;
  readonly target: 'create' | 'mod';
  readonly revision: number;
}

export interface Put {
  readonly key: string;
  readonly value: string;
  /** Attach to this lease: the key goes when the lease expires. */
  readonly lease?: StoreLease;
}

export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: number;
}

export interface WatchHandler {
  /** Something under the prefix changed at `revision` (level-triggered: re-read what matters). */
  change(revision: number): void;
  /** The watch ended: compacted history, store gone, canceled. The caller re-reads and re-watches. */
  error(err: Error): void;
}

export interface StoreLease {
  readonly id: string;
  readonly ttlSeconds: number;
  /** Events: the first missed keepalive (`failed`), a keepalive that went through (`ok`), `lost` (expired). */
  on(event: 'failed' | 'ok' | 'lost', fn: () => void): void;
  revoke(): Promise<void>;
}

export interface FleetStore {
  readonly fleet: string;
  get(key: string): Promise<KeyValue | null>;
  /** Every key under `prefix` and the store's revision at the read. */
  list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }>;
  put(put: Put): Promise<number>;
  /** All compares hold: apply `puts` atomically. Otherwise nothing is written. */
  txn(compares: readonly Compare[], puts: readonly Put[]): Promise<TxnResult>;
  /** Watch `prefix` from `fromRevision` (inclusive); resolves once the watch is established. */
  watch(prefix: string, fromRevision: number, handler: WatchHandler): Promise<{ cancel(): Promise<void> }>;
  /** A lease kept alive in the background until revoked or lost. */
  lease(ttlSeconds: number): Promise<StoreLease>;
  close(): Promise<void>;
}

/** The fleet's key layout (relative to `/elastic/<fleet>/`): one place names every key. */
export const Keys = {
  current: 'current',
  versionsPrefix: 'versions/',
  version: (n: number) => `versions/${String(n).padStart(10, '0')}`,
  /** A host's last status (persistent: a dead host still shows, as not alive). */
  hostsPrefix: 'hosts/',
  host: (name: string) => `hosts/${name}`,
  /** A host's liveness: on its lease, gone TTL seconds after the host stops keeping it alive. */
  alivePrefix: 'alive/',
  alive: (name: string) => `alive/${name}`,
  /** The fleet leader: created on the leader's lease; its create revision fences the leader's writes. */
  leader: 'leader',
  /** The leader's fenced heartbeat (who leads, and that its writes still hold). */
  heartbeat: 'singleton/heartbeat',
  /** Fleet-wide daemon state (the ELB API's `elb`): every host reads and writes the same value. */
  state: (key: string) => `state/${key}`,
} as const;

/** Fleet and host names go into keys, metrics and logs: a strict identifier, 1-63 characters. */
export const NAME_RE = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;

export function checkName(what: 'fleet' | 'host', name: string): string {
  if (!NAME_RE.test(name)) {
    throw new UserError(`invalid ${what} name ${JSON.stringify(name.slice(0, 80))}`, `a ${what} name is 1-63 of a-z 0-9 . _ - (starting and ending with a letter or digit)`, ExitCode.usage);
  }
  return name;
}

export function fleetPrefix(fleet: string): string {
  return `/elastic/${checkName('fleet', fleet)}/`;
}

/** The version number of a `versions/...` key, or null for anything else. */
export function versionOfKey(key: string): number | null {
  const m = /^versions\/(\d{10})$/.exec(key);
  return m ? Number(m[1]) : null;
}
