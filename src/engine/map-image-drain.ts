import { MappingsApplier } from './dataplane/apply.js';
import { listFlows, liveFlows } from './dataplane/conntrack.js';
import { canonicalAddress, endpointKey, familyOf } from './dataplane/model.js';
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
  const r = await applier.update((s) => ({
    ...s,
    mappings: s.mappings.map((m) =>
      (opts.mappingId === undefined || m.spec.id === opts.mappingId) && m.backends.some((b) => endpointKey(b.address, b.port) === key) && !m.draining.includes(key)
        ? { ...m, draining: [...m.draining, key] }
        : m,
    ),
  }));
  const affected = r.after.mappings.filter((m) => m.draining.includes(key)).map((m) => m.spec);
  const deadline = t0 + (opts.timeoutMs ?? 30_000);
  let remaining = 0;
  for (;;) {
    remaining = 0;
    for (const spec of affected) remaining += liveFlows(await listFlows(spec.protocol, spec.port, { env: opts.env }, familyOf(address)), address, target.port);
    if (remaining === 0 || Date.now() >= deadline || opts.signal?.aborted) break;
    await new Promise((res) => setTimeout(res, opts.pollMs ?? 200));
  }
  return { drained: remaining === 0, mappings: affected.map((s) => s.id), remaining, ms: Date.now() - t0 };
}
