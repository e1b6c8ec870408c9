import { MappingsApplier } from './dataplane/apply.js';
import { listFlows, liveFlows } from './dataplane/conntrack.js';
import { canonicalAddress, drainGroup, endpointKey, familyOf, type MappingEntry } from './dataplane/model.js';
import { FileStateStore, type StateStore } from './runtime/state-store.js';

/** map-image's drain contract (deploy's rolling update, status socket `drain`): see drainBackend. */
export interface DrainResult {
  readonly drained: boolean;
  readonly mappings: readonly string[];
  /** Live flows still going to the backend when we stopped waiting. */
  readonly remaining: number;
  readonly ms: number;
}

/**
 * Deploy's contract: take `address:port` out of the DNAT set of every mapping that has it (or of
 * `mappingId`), then wait until conntrack shows no live flow to it, or `timeoutMs`. New
 * connections stop at once; existing ones finish. The backend stays "draining" in state (so a
 * watcher does not put it back) until discovery no longer reports it.
 */
export async function drainBackend(
  target: { address: string; port: number },
  opts: { mappingId?: string; timeoutMs?: number; pollMs?: number; store?: StateStore; env?: NodeJS.ProcessEnv; signal?: AbortSignal; applier?: MappingsApplier } = {},
): Promise<DrainResult> {
  const t0 = Date.now();
  const address = canonicalAddress(target.address) || target.address; // IPv6 as the state spells it
  const key = endpointKey(address, target.port);
  const applier = opts.applier ?? new MappingsApplier({ store: opts.store ?? new FileStateStore(), env: opts.env });
  const r = await applier.update((s) => ({ ...s, mappings: s.mappings.map((m) => (opts.mappingId === undefined || m.spec.id === opts.mappingId ? drainIn(m, key) : m)) }));
  const affected = r.after.mappings.filter((m) => m.draining.includes(key));
  const deadline = t0 + (opts.timeoutMs ?? 30_000);
  let remaining = 0;
  for (;;) {
    remaining = 0;
    for (const m of affected) {
      for (const e of drainGroup(m, key)) remaining += liveFlows(await listFlows(m.spec.protocol, m.spec.port, { env: opts.env }, familyOf(e.address)), e.address, e.port);
    }
    if (remaining === 0 || Date.now() >= deadline || opts.signal?.aborted) break;
    await new Promise((res) => setTimeout(res, opts.pollMs ?? 200));
  }
  const mappings = affected.map((m) => m.spec.id);
  return { drained: remaining === 0, mappings, remaining, ms: Date.now() - t0 };
}

function drainIn(m: MappingEntry, key: string): MappingEntry {
  const keys = drainGroup(m, key).map((b) => endpointKey(b.address, b.port)).filter((k) => !m.draining.includes(k));
  return keys.length === 0 ? m : { ...m, draining: [...m.draining, ...new Set(keys)] };
}
