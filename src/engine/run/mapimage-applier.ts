import { isIP } from 'node:net';
import type { BackendSet } from '../model/backend.js';
import { MappingsApplier } from '../dataplane/apply.js';
import { readMappings } from '../dataplane/store.js';
import { readBackendCounters } from '../dataplane/counters.js';
import type { MappingSpec } from '../dataplane/model.js';
import { drainBackend, removeMapping, resolveSpec, toMappingBackends, upsertMapping, viewOf } from '../map-image.js';
import type { ApplierContext, RunApplier, SyncOutcome } from './appliers.js';
import type { MapImageServe } from './config.js';
import type { MetricsRegistry } from './metrics.js';

/**
 * Kernel DNAT (map-image) for every service with `map_image:`: one MappingsApplier, one atomic
 * transaction per sync. The mappings this daemon declared are remembered (state key
 * `run-<name>-mappings`) so a mapping removed from the config is removed from the kernel.
 */
export class MapImageApplier implements RunApplier {
  readonly name = 'map-image';
  readonly kind = 'map-image';
  private readonly applier: MappingsApplier;
  private specs = new Map<string, MappingSpec>();

  constructor(
    private readonly daemon: string,
    private readonly ctx: ApplierContext,
  ) {
    this.applier = new MappingsApplier({ store: ctx.store, logger: ctx.logger.child('map-image'), env: ctx.env });
  }

  private get ownedKey(): string {
    return `run-${this.daemon}-mappings`;
  }

  /** Resolve (root, data plane) every declared mapping; nothing is written. */
  async setServices(services: ReadonlyArray<{ name: string; serve: MapImageServe }>): Promise<void> {
    const next = new Map<string, MappingSpec>();
    for (const s of services) {
      const spec = await resolveSpec({ port: s.serve.port, protocol: s.serve.protocol, address: s.serve.address, dataplane: s.serve.dataplane, spread: s.serve.spread, seed: s.serve.seed, affinity: s.serve.affinity, affinityTimeoutS: s.serve.affinityTimeoutS, image: `run:${s.name}`, containerPort: 0, staticBackends: [], env: this.ctx.env });
      next.set(s.name, spec);
    }
    this.specs = next;
  }

  services(): readonly string[] {
    return [...this.specs.keys()];
  }

  /** The mapping ids this daemon declared (and so removes when they leave the config). */
  async owned(): Promise<string[]> {
    return (await this.ctx.store.get(this.ownedKey, isStringList)) ?? [];
  }

  async sync(backends: Readonly<Record<string, BackendSet>>): Promise<SyncOutcome> {
    const owned = await this.owned();
    const wanted = [...this.specs.values()].map((s) => s.id);
    const r = await this.applier.update((state) => {
      let s = state;
      for (const id of owned) if (!wanted.includes(id)) s = removeMapping(s, id);
      for (const [service, spec] of this.specs) s = upsertMapping(s, spec, toMappingBackends(backends[service] ?? []));
      return s;
    });
    this.warnIpv4Only(backends);
    if (owned.join() !== wanted.join()) await this.ctx.store.put(this.ownedKey, wanted);
    return { action: r.transactions > 0 ? 'applied' : 'none', reason: `${r.transactions} transaction(s)${r.full ? ', full' : ''}` };
  }

  private readonly warnedV6 = new Set<string>();

  /** iptables maps IPv4 only: an IPv6-only backend (a static source's) is left out, and says so once. */
  private warnIpv4Only(backends: Readonly<Record<string, BackendSet>>): void {
    for (const [service, spec] of this.specs) {
      if (spec.dataplane !== 'iptables') continue;
      for (const b of backends[service] ?? []) {
        const key = `${service} ${b.address}:${b.port}`;
        if (isIP(b.address) !== 6 || this.warnedV6.has(key)) continue;
        this.warnedV6.add(key);
        this.ctx.logger.child('map-image').warn(`backend [${b.address}]:${b.port} of ${service} is not mapped: the iptables data plane maps IPv4 only`, { hint: 'set map_image.dataplane: nft (docs/map-image.md, "IPv6")' });
      }
    }
  }

  /** Periodic resync reads the kernel again (drift repair). */
  invalidate(): void {
    this.applier.invalidate();
  }

  private async countersNow() {
    const state = await readMappings(this.ctx.store);
    const ids = new Set([...this.specs.values()].map((s) => s.id));
    const mine = { ...state, mappings: state.mappings.filter((m) => ids.has(m.spec.id)) };
    return { mine, counters: await readBackendCounters(mine, { env: this.ctx.env }).catch(() => undefined) };
  }

  async status(): Promise<Record<string, unknown>> {
    const { mine, counters } = await this.countersNow();
    const out: Record<string, unknown> = {};
    for (const [service, spec] of this.specs) {
      const entry = mine.mappings.find((m) => m.spec.id === spec.id);
      out[service] = entry ? viewOf(entry, counters?.get(spec.id)) : { id: spec.id, backends: [] };
    }
    return out;
  }

  async drain(args: { address: string; port: number; timeoutMs: number }, signal: AbortSignal) {
    const r = await drainBackend({ address: args.address, port: args.port }, { timeoutMs: args.timeoutMs, store: this.ctx.store, env: this.ctx.env, applier: this.applier, signal });
    return { drained: r.drained, remaining: r.remaining, mappings: r.mappings };
  }

  async collect(m: MetricsRegistry): Promise<void> {
    const { mine, counters } = await this.countersNow();
    const packets = m.of('dnatPacketsTotal');
    const bytes = m.of('dnatBytesTotal');
    packets.clear();
    bytes.clear();
    for (const entry of mine.mappings) {
      for (const b of viewOf(entry, counters?.get(entry.spec.id)).backends) {
        if (b.packets !== null) packets.set({ mapping: entry.spec.id, backend: b.endpoint }, b.packets);
        if (b.bytes !== null) bytes.set({ mapping: entry.spec.id, backend: b.endpoint }, b.bytes);
      }
    }
  }

  async close(): Promise<void> {
    // The rules stay in the kernel and keep serving; only our nft session ends (each reload
    // builds a new applier: an open session per old one leaked a process and its pipes).
    this.applier.close();
  }
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
