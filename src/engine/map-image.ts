import { isIP } from 'node:net';
import { discoverOnce, discoverWatch, type DiscoverOptions } from './discover.js';
import { ExitCode, UserError, describeError } from './errors.js';
import { backendWeight, endpoint, type Backend, type BackendSet } from './model/backend.js';
import { parseWeightedEndpoint, printable, toIdent } from './model/validate.js';
import { DEFAULT_SEED } from './dataplane/maglev.js';
import { nullLogger, type Logger } from './runtime/logger.js';
import { FileStateStore, type StateStore } from './runtime/state-store.js';
import { runDir } from './runtime/paths.js';
import { requestStatus } from './runtime/status.js';
import { MappingsApplier } from './dataplane/apply.js';
import { Hairpins } from './dataplane/hairpin.js';
import { detectDataplane, requireNetAdmin } from './dataplane/exec.js';
import { readBackendCounters } from './dataplane/counters.js';
import { readMappings } from './dataplane/store.js';
import { namespaceFor } from './dataplane/namespace.js';
import { adoptFromKernel, inNamespace, isAdopted, readKernelMappings, targetsUnknownTo, type KernelMapping } from './dataplane/kernel-mappings.js';
import type { CheckSpec } from './health/checker.js';
import { isImageReference } from './discovery/selector.js';
import {
  backendAddressProblem,
  canonicalAddress,
  endpointKey,
  mappingId,
  sameSpec,
  sameTarget,
  type DataplaneKind,
  type MappingBackend,
  type MappingEntry,
  type MappingSpec,
  type MappingsState,
  type Protocol,
  type Spread,
} from './dataplane/model.js';
import { resolveSpread, type SpreadOptions } from './map-image-spread.js';

/**
 * `map-image` as engine functions: declare a mapping (one-shot or watching), list, stop, and the
 * contracts other features use: `readAllBackendCounters()` (top, status sockets) and
 * `drainBackend()` (deploy's rolling update). Commands stay thin; the long-running form is in
 * map-image-watch.ts.
 */
export interface MapImageOptions extends SpreadOptions {
  port: number;
  protocol: Protocol;
  image: string;
  containerPort: number;
  address?: string;
  dataplane: DataplaneKind | 'auto';
  network?: string;
  staticBackends: readonly string[];
  dockerHost?: string;
  /**
   * Active readiness check: a container is DNATed to only once it answers (and taken out when it
   * stops answering). Without it, a container is served as soon as Docker says it runs (or its own
   * HEALTHCHECK says healthy), which can be before its app listens.
   */
  check?: CheckSpec;
  /** One-shot: how long to wait for a first container when there is none (ms). */
  waitMs?: number;
  logger?: Logger;
  store?: StateStore;
  env?: NodeJS.ProcessEnv;
}

export interface MappingView {
  readonly id: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly address: string | null;
  readonly image: string;
  readonly containerPort: number;
  readonly network: string | null;
  readonly dataplane: DataplaneKind;
  readonly spread: Spread;
  /** The hash seed (null with --spread random). */
  readonly seed: number | null;
  /** Client-ip affinity timeout in seconds (null: no affinity). */
  readonly affinityTimeoutS: number | null;
  readonly created: string;
  readonly updated: string;
  readonly backends: ReadonlyArray<{
    id: string;
    name: string;
    address: string;
    port: number;
    endpoint: string;
    /** 0-256; 0 = no new connections. */
    weight: number;
    draining: boolean;
    packets: number | null;
    bytes: number | null;
  }>;
}

export interface MapImageResult {
  readonly v: 1;
  readonly mapping: MappingView;
  readonly transactions: number;
  readonly ms: number;
}

export const storeOf = (opts: { store?: StateStore }) => opts.store ?? new FileStateStore();

/** Validate and resolve a declaration: permission, data plane, addresses. Nothing is written. */
export async function resolveSpec(opts: MapImageOptions): Promise<MappingSpec> {
  await requireNetAdmin();
  const address = opts.address === undefined ? undefined : canonicalAddress(opts.address);
  if (address !== undefined) {
    if (!address) throw new UserError(`invalid --address "${printable(opts.address!, 60)}"`, 'give an IPv4 or IPv6 address of this host, e.g. 198.18.0.1 or 2001:2::1', ExitCode.usage);
    if (address.startsWith('127.') || address === '::1') {
      throw new UserError('loopback addresses cannot be mapped', 'local clients reach the mapping on any non-loopback address of this host (see docs/map-image.md, "127.0.0.1")', ExitCode.usage);
    }
    if (isIP(address) === 6 && backendAddressProblem(address)) throw new UserError(`--address ${address} is ${backendAddressProblem(address)}`, 'give a global IPv6 address of this host', ExitCode.usage);
  }
  if (!isImageReference(opts.image)) {
    throw new UserError(`invalid image reference "${printable(opts.image, 80)}"`, 'give repo:tag (e.g. elastic-test/web:1), registry/repo@sha256:..., or an image ID', ExitCode.usage);
  }
  for (const b of opts.staticBackends) {
    const problem = backendAddressProblem(parseWeightedEndpoint(b).address);
    if (problem) throw new UserError(`backend ${printable(b, 60)} is ${problem}`, 'give the address of a host or container that serves the port', ExitCode.usage);
  }
  const dataplane = await detectDataplane(opts.dataplane, { env: opts.env });
  const v6 = [address, ...opts.staticBackends.map((b) => parseWeightedEndpoint(b).address)].find((a) => a !== undefined && isIP(a) === 6);
  if (dataplane === 'iptables' && v6) throw new UserError(`IPv6 (${printable(v6, 60)}) needs the nft data plane`, 'use --dataplane nft (or auto with nft installed); iptables maps IPv4 only', ExitCode.usage);
  const spread = resolveSpread(dataplane, opts);
  return {
    id: mappingId(opts.protocol, opts.port),
    protocol: opts.protocol,
    port: opts.port,
    address,
    image: opts.image,
    containerPort: opts.containerPort,
    network: opts.network,
    staticBackends: [...opts.staticBackends],
    dataplane,
    ...spread,
    created: new Date().toISOString(),
  };
}

export function discoverOptionsFor(spec: MappingSpec, opts: Pick<MapImageOptions, 'dockerHost' | 'logger' | 'env' | 'check'>): DiscoverOptions {
  const service = toIdent(spec.image.replace(/[:@].*$/, '').split('/').pop() || spec.id);
  return {
    docker: { host: opts.dockerHost, keepStopping: true, selector: { image: spec.image, labels: [], network: spec.network, port: spec.containerPort, includeUnhealthy: false, service } },
    static: spec.staticBackends.length ? { backends: [...spec.staticBackends], service } : undefined,
    logger: opts.logger,
    env: opts.env,
    check: opts.check,
  };
}

/**
 * Discovery's backends as mapping backends: a container on an IPv6-enabled network is two, its
 * IPv4 and its IPv6 address (the same id: it is one container), each served in its own family.
 */
export function toMappingBackends(backends: BackendSet): MappingBackend[] {
  return backends.flatMap((b) => {
    const weight = backendWeight(b);
    const name = printable(b.name, 80);
    return addressesOf(b).map((address) => ({ id: b.id, name, address, port: b.port, ...(weight !== 1 ? { weight } : {}) }));
  });
}

/** The addresses a backend is served on (canonical; not a DNAT target: left out). */
function addressesOf(b: Pick<Backend, 'address' | 'address6'>): string[] {
  return [b.address, b.address6].map((a) => (a === undefined || backendAddressProblem(a) ? '' : canonicalAddress(a))).filter((a) => a !== '');
}

/** Backends discovery reports as going away (a stop was sent): drained, their live flows kept. */
export function stoppingEndpoints(backends: BackendSet): string[] {
  return backends.filter((b) => b.state === 'draining').flatMap((b) => addressesOf(b).map((a) => endpointKey(a, b.port)));
}

function conflict(existing: MappingSpec): UserError {
  return new UserError(
    `port ${existing.port}/${existing.protocol} is already mapped (to ${printable(existing.image, 80)} port ${existing.containerPort})`,
    `stop it first: elastic map-image stop ${existing.port}${existing.protocol === 'udp' ? ' --protocol udp' : ''}`,
    ExitCode.usage,
  );
}

/**
 * The pure state change of a sync: this mapping now has these backends; drains are kept while the
 * backend is present, and `stopping` endpoints (being stopped) are drained.
 */
export function upsertMapping(state: MappingsState, spec: MappingSpec, offered: readonly MappingBackend[], stopping: readonly string[] = []): MappingsState {
  const backends = servable(spec, offered);
  const old = state.mappings.find((m) => m.spec.id === spec.id);
  if (old && !isAdopted(old.spec) && !sameTarget(old.spec, spec)) throw conflict(old.spec);
  const keepSpec = old !== undefined && sameSpec(old.spec, spec);
  const present = new Set(backends.map((b) => endpointKey(b.address, b.port)));
  const draining = [...new Set([...(old?.draining ?? []), ...stopping])].filter((d) => present.has(d));
  const sameDrains = draining.length === (old?.draining.length ?? 0) && draining.every((d) => old!.draining.includes(d));
  if (old && keepSpec && sameBackends(old.backends, backends) && sameDrains) return state;
  const entry: MappingEntry = { spec: keepSpec ? old.spec : { ...spec, created: old?.spec.created ?? spec.created }, backends: [...backends], draining, updated: new Date().toISOString() };
  const mappings = [...state.mappings.filter((m) => m.spec.id !== spec.id), entry].sort((a, b) => (a.spec.id < b.spec.id ? -1 : 1));
  return { ...state, mappings };
}

/**
 * The backends of the families the mapping serves: both on nft without --address, the address's
 * family with one, IPv4 on iptables (a dual-stack container is served there on IPv4 only).
 */
function servable(spec: MappingSpec, backends: readonly MappingBackend[]): readonly MappingBackend[] {
  const family = spec.address !== undefined ? isIP(spec.address) : spec.dataplane === 'iptables' ? 4 : 0;
  return family === 0 ? backends : backends.filter((b) => isIP(b.address) === family);
}

function sameBackends(a: readonly MappingBackend[], b: readonly MappingBackend[]): boolean {
  const key = (x: MappingBackend) => `${x.id} ${x.address}:${x.port} ${x.name} ${x.weight ?? 1}`;
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

export function removeMapping(state: MappingsState, id: string): MappingsState {
  return { ...state, mappings: state.mappings.filter((m) => m.spec.id !== id) };
}

/**
 * Refuse a port this state directory maps to another image, or that another state directory's
 * namespace maps in the kernel: two namespaces on one port both "work" while one of them gets
 * every connection and the other counts none.
 */
export async function assertNoConflict(spec: MappingSpec, store: StateStore, env?: NodeJS.ProcessEnv): Promise<void> {
  const existing = (await readMappings(store)).mappings.find((m) => m.spec.id === spec.id);
  if (existing && !isAdopted(existing.spec) && !sameTarget(existing.spec, spec)) throw conflict(existing.spec);
  const ns = namespaceFor(store.location, env);
  const other = (await readKernelMappings({ env }, (n, id) => id === spec.id && n !== ns.id)).find((k) => k.id === spec.id && k.namespace !== ns.id);
  if (other) {
    throw new UserError(
      `port ${spec.port}/${spec.protocol} is already mapped by another elastic state directory (kernel namespace ${other.namespace ? `elastic_${other.namespace}` : 'elastic'}, ${other.dataplane}, ${other.targets.length} backend(s))`,
      `stop it there first (ELASTIC_STATE_DIR=<that directory> elastic map-image stop ${spec.port}), or map another port`,
      ExitCode.refused,
    );
  }
}

/** One-shot: discover, wait for a first container if there is none, program, exit. */
export async function mapImage(opts: MapImageOptions, signal: AbortSignal): Promise<MapImageResult> {
  const log = opts.logger ?? nullLogger;
  const spec = await resolveSpec(opts);
  const store = storeOf(opts);
  await assertNoConflict(spec, store, opts.env);
  const dopts = discoverOptionsFor(spec, opts);
  const applier = new MappingsApplier({ store, logger: log, env: opts.env });
  if (spec.dataplane === 'nft') applier.warm(); // the nft session starts while Docker is asked
  let backends = (await discoverOnce(dopts)).backends;
  if (backends.length === 0) backends = await waitForBackends(spec, dopts, opts.waitMs ?? 60_000, signal, log);
  const r = await applier.update((s) => upsertMapping(s, spec, toMappingBackends(backends)));
  const entry = r.after.mappings.find((m) => m.spec.id === spec.id)!;
  await new Hairpins(opts.dockerHost, opts.env, log).ensure(entry.backends.map((b) => b.id));
  log.info(`mapped ${spec.port}/${spec.protocol} to ${entry.backends.length} backend(s)`, { dataplane: spec.dataplane, ms: Math.round(r.ms) });
  return { v: 1, mapping: viewOf(entry, undefined), transactions: r.transactions, ms: r.ms };
}

async function waitForBackends(spec: MappingSpec, dopts: DiscoverOptions, waitMs: number, signal: AbortSignal, log: Logger): Promise<BackendSet> {
  log.info(`no running container of ${printable(spec.image, 80)} exposes port ${spec.containerPort} yet: waiting up to ${Math.round(waitMs / 1000)}s`);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), waitMs);
  const both = AbortSignal.any([signal, ac.signal]);
  try {
    for await (const u of discoverWatch(dopts, both)) if (u.backends.length > 0) return u.backends;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  throw new UserError(
    `no container of ${printable(spec.image, 80)} appeared${signal.aborted ? '' : ` in ${Math.round(waitMs / 1000)}s`}; nothing was changed`,
    'start one (docker run ...), raise --wait, or use --watch to keep the mapping waiting for containers',
    ExitCode.unavailable,
  );
}

export function viewOf(entry: MappingEntry, counters: Map<string, { packets: number; bytes: number }> | undefined): MappingView {
  const { spec } = entry;
  const draining = new Set(entry.draining);
  return {
    id: spec.id,
    protocol: spec.protocol,
    port: spec.port,
    address: spec.address ?? null,
    image: spec.image,
    containerPort: spec.containerPort,
    network: spec.network ?? null,
    dataplane: spec.dataplane,
    spread: spec.spread ?? 'random',
    seed: spec.spread === 'hash' ? (spec.seed ?? DEFAULT_SEED) : null,
    affinityTimeoutS: spec.affinityS ?? null,
    created: spec.created,
    updated: entry.updated,
    backends: entry.backends.map((b) => {
      const key = endpointKey(b.address, b.port);
      const c = counters?.get(key);
      return { id: b.id, name: b.name, address: b.address, port: b.port, endpoint: endpoint(b), weight: b.weight ?? 1, draining: draining.has(key), packets: c?.packets ?? null, bytes: c?.bytes ?? null };
    }),
  };
}

export interface ListResult {
  readonly v: 1;
  /** `lost`: programmed in the kernel but not in the state file (a lost or moved-aside file). */
  readonly mappings: ReadonlyArray<MappingView & { watcher: number | null; lost: boolean }>;
  /** The same ports mapped by another state directory's namespace (only one of them gets the traffic). */
  readonly conflicts: readonly KernelMapping[];
  /** Why counters are null, when they are (not root), or why the kernel was not read. */
  readonly note?: string;
}

/** Counters for every mapping: the contract `top` and the status sockets use. */
export async function readAllBackendCounters(opts: { store?: StateStore; env?: NodeJS.ProcessEnv } = {}) {
  const store = storeOf(opts);
  const state = await readMappings(store);
  return { state, counters: await readBackendCounters(state, { env: opts.env, ns: namespaceFor(store.location, opts.env) }) };
}

/** The state file's mappings and, from the kernel, the ones it no longer lists and other namespaces' on the same ports. */
export async function listMappings(opts: { store?: StateStore; env?: NodeJS.ProcessEnv } = {}): Promise<ListResult> {
  const store = storeOf(opts);
  const ns = namespaceFor(store.location, opts.env);
  const notes: string[] = [];
  const file = await readMappings(store);
  const kernel = await readKernelMappings({ env: opts.env }, targetsUnknownTo(ns, file)).catch((err: unknown) => {
    notes.push(`kernel not read: ${describeError(err)}`);
    return [] as KernelMapping[];
  });
  const state = adoptFromKernel(file, kernel.filter(inNamespace(ns)));
  let counters: Awaited<ReturnType<typeof readBackendCounters>> | undefined;
  try {
    counters = await readBackendCounters(state, { env: opts.env, ns });
  } catch (err) {
    notes.push(`counters unavailable: ${describeError(err)}`);
  }
  const mappings = [];
  for (const entry of state.mappings) mappings.push({ ...viewOf(entry, counters?.get(entry.spec.id)), watcher: await watcherPid(entry.spec.id, opts.env), lost: isAdopted(entry.spec) });
  const ours = new Set(state.mappings.map((m) => m.spec.id));
  const conflicts = kernel.filter((k) => k.namespace !== ns.id && ours.has(k.id));
  return { v: 1, mappings, conflicts, ...(notes.length ? { note: notes.join('; ') } : {}) };
}

export const watcherSocket = (id: string, env?: NodeJS.ProcessEnv) => `${runDir(env ?? process.env)}/map-image.${id}.sock`;

async function watcherPid(id: string, env?: NodeJS.ProcessEnv): Promise<number | null> {
  try {
    return (await requestStatus<{ pid: number }>(watcherSocket(id, env), { op: 'snapshot' }, 1000)).pid;
  } catch {
    return null;
  }
}

export interface StopResult {
  readonly v: 1;
  readonly stopped: string;
  readonly backends: number;
  /** `watcher`: the running --watch process removed it and exited; `direct`: removed here. */
  readonly via: 'watcher' | 'direct';
}

/** Remove exactly this mapping's rules (and our hooks, table and chains with the last one). */
export async function stopMapping(port: number, protocol: Protocol, opts: { store?: StateStore; env?: NodeJS.ProcessEnv; logger?: Logger } = {}): Promise<StopResult> {
  await requireNetAdmin();
  const id = mappingId(protocol, port);
  const store = storeOf(opts);
  const entry = (await readMappings(store)).mappings.find((m) => m.spec.id === id);
  if (!entry) {
    // Not in the state file, maybe still in the kernel (the file was lost): remove exactly it,
    // keeping (adopting) the namespace's other kernel-only mappings instead of sweeping them.
    const own = (await readKernelMappings({ env: opts.env })).filter(inNamespace(namespaceFor(store.location, opts.env)));
    const live = own.find((k) => k.id === id);
    if (!live) throw new UserError(`port ${port}/${protocol} is not mapped`, 'see what is: elastic map-image list', ExitCode.usage);
    await new MappingsApplier({ store, env: opts.env, logger: opts.logger }).update((s) => removeMapping(adoptFromKernel(s, own), id), { full: true });
    return { v: 1, stopped: id, backends: live.targets.length, via: 'direct' };
  }
  if ((await watcherPid(id, opts.env)) !== null) {
    const r = await requestStatus<{ ok: boolean; error?: string }>(watcherSocket(id, opts.env), { op: 'action', action: 'stop', args: {} }, 15_000);
    if (!r.ok) throw new UserError(`the watching process refused to stop: ${printable(r.error ?? '', 200)}`, 'stop it with SIGTERM and run stop again', ExitCode.refused);
    return { v: 1, stopped: id, backends: entry.backends.length, via: 'watcher' };
  }
  await new MappingsApplier({ store, env: opts.env, logger: opts.logger }).update((s) => removeMapping(s, id), { full: true });
  return { v: 1, stopped: id, backends: entry.backends.length, via: 'direct' };
}

/**
 * Remove every mapping and every kernel object of this state directory's namespace (its chains,
 * hook rules and nft table), even ones a lost state file no longer knows about. Running watchers are asked to stop first.
 */
export async function stopAllMappings(opts: { store?: StateStore; env?: NodeJS.ProcessEnv; logger?: Logger } = {}): Promise<StopResult[]> {
  await requireNetAdmin();
  const store = storeOf(opts);
  const out: StopResult[] = [];
  for (const m of (await readMappings(store)).mappings) {
    if ((await watcherPid(m.spec.id, opts.env)) !== null) out.push(await stopMapping(m.spec.port, m.spec.protocol, opts));
    else out.push({ v: 1, stopped: m.spec.id, backends: m.backends.length, via: 'direct' });
  }
  await new MappingsApplier({ store, env: opts.env, logger: opts.logger }).update((s) => ({ ...s, mappings: [] }), { full: true });
  return out;
}

export { drainBackend, type DrainResult } from './map-image-drain.js';
