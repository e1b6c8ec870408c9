import { discoverWatch } from '../discover.js';
import { describeError } from '../errors.js';
import { endpoint, type BackendSet } from '../model/backend.js';
import { printable } from '../model/validate.js';
import { nullLogger } from '../runtime/logger.js';
import { SyncRunner } from '../runtime/runner.js';
import { StatusServer } from '../runtime/status.js';
import {
  assertNoConflict,
  discoverOptionsFor,
  drainBackend,
  removeMapping,
  resolveSpec,
  stoppingEndpoints,
  storeOf,
  toMappingBackends,
  upsertMapping,
  viewOf,
  type MapImageOptions,
} from '../map-image.js';
import { MappingsApplier } from './apply.js';
import { readBackendCounters } from './counters.js';
import { readMappings } from './store.js';
import { Hairpins } from './hairpin.js';
import { NftDriftMonitor, fullReadDue } from './nft-monitor.js';
import { recentToolPids } from './exec.js';
import { drainGroup, endpointKey, type MappingsState } from './model.js';

/**
 * The long-running form (`map-image ... --watch`): Docker events -> discoverWatch -> one
 * SyncRunner -> the applier. Serves the status socket `map-image.<id>.sock` whose services
 * content is `{ [mappingId]: MappingView & { syncs, lastSyncMs, lastError } }` (backends carry
 * kernel packet/byte counters), with actions `stop` (remove the mapping, exit) and `drain`.
 *
 * On SIGINT/SIGTERM the rules stay (the kernel keeps serving; a restart reconciles without a
 * gap) unless `removeOnExit`.
 */
export interface WatchOptions extends MapImageOptions {
  removeOnExit?: boolean;
  /** Minimum time between two applies (an event storm makes one apply). */
  minIntervalMs?: number;
  /** Full resync (kernel read, drift repair) at least this often. */
  resyncMs?: number;
  onApplied?: (info: { backends: number; ms: number; transactions: number; reason: string }) => void;
  onListening?: (socket: string) => void;
}

export async function runMapImageWatch(opts: WatchOptions, signal: AbortSignal): Promise<{ removed: boolean }> {
  const log = opts.logger ?? nullLogger;
  const spec = await resolveSpec(opts);
  const store = storeOf(opts);
  await assertNoConflict(spec, store, opts.env);
  const applier = new MappingsApplier({ store, logger: log, env: opts.env });
  if (spec.dataplane === 'nft') applier.warm();
  const stopRequested = new AbortController();
  const both = AbortSignal.any([signal, stopRequested.signal]);
  let latest: BackendSet | null = null;
  let lastSyncMs = 0;
  let stopping = false;
  const hairpins = new Hairpins(opts.dockerHost, opts.env, log);
  // A periodic resync reads the kernel (a 32,749-element Maglev map: up to a second of nft time)
  // only when the monitor saw another process touch our objects, or every FULL_READ_EVERY-th time.
  let driftSuspected = false;
  let resyncsSinceFull = 0;
  const monitor =
    spec.dataplane === 'nft'
      ? new NftDriftMonitor(
          applier.ns,
          () => (applier.nftPid === undefined ? recentToolPids() : [applier.nftPid, ...recentToolPids()]),
          (why) => {
            driftSuspected = true;
            log.debug('another process changed our rules: resyncing from the kernel', { why });
            runner.request('drift');
          },
          { env: opts.env },
        )
      : null;
  monitor?.start();

  const status = new StatusServer({
    kind: 'map-image',
    name: spec.id,
    config: { id: spec.id, port: spec.port, protocol: spec.protocol, image: spec.image, containerPort: spec.containerPort, dataplane: spec.dataplane, address: spec.address ?? null },
    services: async () => {
      const state = await readMappings(store);
      const entry = state.mappings.find((m) => m.spec.id === spec.id);
      if (!entry) return {};
      const counters = await readBackendCounters({ ...state, mappings: [entry] }, { env: opts.env, ns: applier.ns }).catch(() => undefined);
      return { [spec.id]: { ...viewOf(entry, counters?.get(spec.id)), syncs: runner.runs, lastSyncMs, lastError: runner.lastError } };
    },
    actions: {
      stop: async () => {
        await shutdown(true);
        stopRequested.abort();
        return { stopped: spec.id };
      },
      drain: async (args) => {
        const address = String(args.address ?? '');
        const port = Number(args.port);
        const r = await drainBackend({ address, port }, { mappingId: spec.id, timeoutMs: Number(args.timeoutMs) || 30_000, store, env: opts.env, applier, signal: both });
        status.event('drain', `${address}:${port} ${r.drained ? 'drained' : `still has ${r.remaining} flow(s)`}`, spec.id);
        return { ...r };
      },
      // The drain contract's way back (top's `d` again): new connections go to it at once. A
      // container that is being stopped stays out (the next sync drains it again).
      undrain: async (args) => {
        const key = endpointKey(String(args.address ?? ''), Number(args.port));
        if (stoppingEndpoints(latest ?? []).includes(key)) throw new Error(`${printable(key, 60)} is being stopped: it stays out`);
        const r = await applier.update((s) => undrainMapping(s, spec.id, key));
        const entry = r.after.mappings.find((m) => m.spec.id === spec.id);
        if (!entry?.backends.some((b) => endpointKey(b.address, b.port) === key)) throw new Error(`${printable(key, 60)} is not a backend of ${spec.id}`);
        status.event('undrain', key, spec.id);
        return { undrained: r.after !== r.before, mapping: spec.id };
      },
    },
  });

  const runner = new SyncRunner(
    async (reason) => {
      if (stopping || latest === null) return;
      const backends = toMappingBackends(latest);
      const going = stoppingEndpoints(latest);
      const periodic = reason === 'resync';
      if (periodic) monitor?.start(); // again, if it ended
      const full = reason === 'retry' || driftSuspected || (periodic && fullReadDue({ monitoring: monitor?.monitoring ?? false, suspected: driftSuspected, resyncsSinceFull }));
      driftSuspected = false; // (a drift seen during this update sets it again)
      const r = await applier.update((s) => upsertMapping(s, spec, backends, going), { full });
      if (r.full) resyncsSinceFull = 0;
      else if (periodic) resyncsSinceFull++;
      lastSyncMs = r.ms;
      await hairpins.ensure(backends.map((b) => b.id));
      if (r.transactions > 0) {
        log.info(`applied ${spec.id}: ${backends.length} backend(s)`, { reason, ms: Math.round(r.ms), transactions: r.transactions, full: r.full });
        status.event('applied', `${backends.length} backend(s) in ${r.ms.toFixed(1)} ms (${reason})`, spec.id);
      }
      opts.onApplied?.({ backends: backends.length, ms: r.ms, transactions: r.transactions, reason });
    },
    {
      minIntervalMs: opts.minIntervalMs ?? 10,
      maxIntervalMs: opts.resyncMs ?? 30_000,
      onError: (err) => {
        log.error(`sync of ${spec.id} failed; the previous rules stay in force, retrying`, { error: describeError(err) });
        status.event('error', describeError(err), spec.id);
      },
    },
  );

  async function shutdown(remove: boolean): Promise<void> {
    if (stopping) return;
    stopping = true;
    monitor?.close();
    runner.stop();
    await runner.idle();
    if (remove) {
      await applier.update((s) => removeMapping(s, spec.id), { full: true });
      log.info(`removed mapping ${spec.id}`);
    }
  }

  // (not `opts.onListening?.(await status.listen())`: optional call skips evaluating its argument)
  const socket = await status.listen();
  opts.onListening?.(socket);
  log.info(`watching containers of ${printable(spec.image, 80)} for ${spec.port}/${spec.protocol}`, { dataplane: spec.dataplane, socket: status.path });
  let waitingSaid = false;
  try {
    for await (const update of discoverWatch(discoverOptionsFor(spec, opts), both)) {
      latest = update.backends;
      for (const c of update.changes) status.event(c.type, `${printable(c.backend.name, 80)} ${endpoint(c.backend)}`, spec.id);
      if (latest.length === 0 && !waitingSaid) {
        waitingSaid = true;
        log.info(`no running container of ${printable(spec.image, 80)} exposes port ${spec.containerPort}: waiting (the port is not forwarded until one starts)`);
      } else if (latest.length > 0) waitingSaid = false;
      runner.request(update.reason);
    }
  } finally {
    const removeNow = !stopRequested.signal.aborted && Boolean(opts.removeOnExit);
    try {
      await shutdown(removeNow);
    } finally {
      await status.close();
    }
    if (!removeNow && !stopRequested.signal.aborted) log.info(`exiting; the rules of ${spec.id} stay in force (stop them with: elastic map-image stop ${spec.port})`);
  }
  return { removed: stopRequested.signal.aborted || Boolean(opts.removeOnExit) };
}

/** The pure state change of an undrain: `key` leaves the mapping's drains (a no-op when it is not drained). */
export function undrainMapping(state: MappingsState, id: string, key: string): MappingsState {
  const entry = state.mappings.find((m) => m.spec.id === id);
  if (!entry || !entry.draining.includes(key)) return state;
  const group = new Set([key, ...drainGroup(entry, key).map((b) => endpointKey(b.address, b.port))]);
  const next = { ...entry, draining: entry.draining.filter((d) => !group.has(d)), updated: new Date().toISOString() };
  return { ...state, mappings: state.mappings.map((m) => (m === entry ? next : m)) };
}
