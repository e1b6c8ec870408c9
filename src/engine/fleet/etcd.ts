import { Etcd3, type IKeyValue, type Lease, type Namespace } from 'etcd3';
import { ExitCode, UserError } from '../errors.js';
import type { ConnectOptions } from './connect.js';
import { fleetPrefix, type Compare, type FleetStore, type KeyValue, type Put, type StoreLease, type TxnResult, type WatchHandler } from './store.js';

/**
 * The fleet store on etcd v3 (the `etcd3` package: pure JS over @grpc/grpc-js). Every call goes
 * through a namespace of `/elastic/<fleet>/`. Unary calls carry a deadline so a store without
 * quorum answers "unavailable" in seconds instead of hanging a command; streams (watch, lease
 * keepalive) have none and reconnect by themselves.
 */
export class EtcdStore implements FleetStore {
  private readonly client: Etcd3;
  private readonly ns: Namespace;

  constructor(readonly opts: ConnectOptions) {
    if (opts.tls) quietIpServerName();
    this.client = new Etcd3({
      hosts: [...opts.endpoints],
      credentials: opts.tls ? { rootCertificate: opts.tls.ca, privateKey: opts.tls.key, certChain: opts.tls.cert } : undefined,
      auth: opts.auth ? { username: opts.auth.username, password: opts.auth.password } : undefined,
      dialTimeout: opts.dialTimeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + opts.dialTimeoutMs }),
    });
    this.ns = this.client.namespace(fleetPrefix(opts.fleet));
  }

  get fleet(): string {
    return this.opts.fleet;
  }

  async get(key: string): Promise<KeyValue | null> {
    const res = await this.call(() => this.ns.get(key).exec());
    const kv = res.kvs[0];
    return kv ? { ...toKeyValue(kv), key } : null; // get() leaves the namespace prefix on
  }

  async list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const res = await this.call(() => this.ns.getAll().prefix(prefix).exec());
    return { kvs: res.kvs.map(toKeyValue), revision: Number(res.header.revision) };
  }

  async put(p: Put): Promise<number> {
    const res = await this.call(() => this.putOp(p).exec());
    return Number(res.header.revision);
  }

  async txn(compares: readonly Compare[], puts: readonly Put[]): Promise<TxnResult> {
    const res = await this.call(() => {
      let b = this.ns.if(compares[0]!.key, compares[0]!.target === 'create' ? 'Create' : 'Mod', '==', compares[0]!.revision);
      for (const c of compares.slice(1)) b = b.and(c.key, c.target === 'create' ? 'Create' : 'Mod', '==', c.revision);
      return b.then(...puts.map((p) => this.putOp(p))).commit();
    });
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async watch(prefix: string, fromRevision: number, handler: WatchHandler): Promise<{ cancel(): Promise<void> }> {
    const w = await this.call(() => this.ns.watch().prefix(prefix).startRevision(String(fromRevision)).create());
    let ended = false;
    const end = (err: Error) => {
      if (ended) return;
      ended = true;
      void w.cancel().catch(() => {});
      handler.error(err);
    };
    w.on('data', (res) => {
      if (!ended && res.events.length) handler.change(Number(res.header.revision));
    });
    w.on('error', (err) => end(err));
    // The client re-establishes a dropped stream by itself; report it so the caller re-reads.
    w.on('disconnected', (err) => end(err));
    return {
      cancel: async () => {
        ended = true;
        await w.cancel().catch(() => {});
      },
    };
  }

  async lease(ttlSeconds: number): Promise<StoreLease> {
    const lease = this.ns.lease(ttlSeconds, { autoKeepAlive: true });
    // A lease that cannot be granted emits `lost`; keep it from becoming an unhandled 'error'.
    lease.on('lost', () => {});
    const id = await this.call(() => lease.grant());
    return new EtcdLease(lease, id, ttlSeconds);
  }

  async close(): Promise<void> {
    this.client.close();
  }

  private putOp(p: Put) {
    const b = this.ns.put(p.key).value(p.value);
    return p.lease ? b.lease((p.lease as EtcdLease).id) : b;
  }

  /** One store call; a transport failure becomes a UserError (exit 3) naming the endpoints. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw storeError(err, this.opts.endpoints);
    }
  }
}

class EtcdLease implements StoreLease {
  constructor(
    private readonly lease: Lease,
    readonly id: string,
    readonly ttlSeconds: number,
  ) {}
  on(event: 'failed' | 'ok' | 'lost', fn: () => void): void {
    if (event === 'failed') this.lease.on('keepaliveFailed', () => fn());
    else if (event === 'ok') this.lease.on('keepaliveSucceeded', () => fn());
    else this.lease.on('lost', () => fn());
  }
  async revoke(): Promise<void> {
    await this.lease.revoke({ deadline: Date.now() + 3000 }).catch(() => this.lease.release());
  }
}

function toKeyValue(kv: IKeyValue): KeyValue {
  return { key: kv.key.toString('utf8'), value: kv.value.toString('utf8'), modRevision: Number(kv.mod_revision), createRevision: Number(kv.create_revision) };
}

/** Store errors the operator can act on; anything else stays a bug. */
export function storeError(err: unknown, endpoints: readonly string[]): Error {
  if (err instanceof UserError) return err;
  const name = (err as Error)?.name ?? '';
  const msg = (err as Error)?.message ?? String(err);
  if (/Auth|PermissionDenied|Unauthenticated|InvalidAuth/i.test(name) || /authentication|permission denied/i.test(msg)) {
    return new UserError(`etcd refused the credentials: ${msg.split('\n')[0]}`, 'check ELASTIC_ETCD_USER and the password file', ExitCode.permission);
  }
  if (/GRPC|Unavailable|Deadline|BrokenCircuit|Connection|EtcdLeaseInvalid|EtcdNoLeader/i.test(name) || /unavailable|deadline|ECONNREFUSED|no connection|circuit|leader/i.test(msg)) {
    return new UserError(`etcd is unreachable or has no quorum (${endpoints.join(',')}): ${msg.split('\n')[0]}`, 'check that a majority of the etcd members run (etcdctl endpoint health)', ExitCode.unavailable);
  }
  return err instanceof Error ? err : new Error(msg);
}

/**
 * grpc-js sets the TLS ServerName to the endpoint's host, and Node warns (DEP0123) on every
 * connection to an IP address: noise on an operator's terminal, not a problem (the certificate is
 * still checked against the IP). Only that one warning is dropped.
 */
let quieted = false;
function quietIpServerName(): void {
  if (quieted) return;
  quieted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
