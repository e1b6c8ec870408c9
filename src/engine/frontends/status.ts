import { describeError } from '../errors.js';
import { endpoint } from '../model/backend.js';
import type { ServerStat } from './haproxy/runtime.js';
import { backendName } from './haproxy/plan.js';
import type { Renderer } from './renderer.js';

/**
 * The `services` content of a `render` status socket (kind "render"), one entry per service:
 *   { proxy, output, backends, slots, counters: {renders, reloads, runtimeOps, starts, refusals,
 *     failures}, lastRender, lastApply, lastRefusal, lastError,
 *     servers: [{ server, backend, address, status, sessions, queue, hits, rate, errors5xx }] }
 * Counters are per render process (all its services apply together). `servers` comes from
 * HAProxy's `show stat`; nginx and Varnish have no per-server stats we read, so their `servers`
 * are the backends of the applied config with status "in config" and zero counters.
 */
export interface RenderServerStatus {
  server: string;
  backend: string | null;
  address: string;
  status: string;
  sessions: number;
  queue: number;
  hits: number;
  rate: number;
  errors5xx: number;
}

export async function renderStatus(renderer: Renderer): Promise<Record<string, unknown>> {
  const state = await renderer.state();
  let stats: ServerStat[] = [];
  let statsError: string | null = null;
  if (renderer.opts.applier.stats) {
    try {
      stats = await renderer.opts.applier.stats();
    } catch (err) {
      statsError = describeError(err);
    }
  }
  const { lastRender, lastApply, lastRefusal, lastError, ...counters } = renderer.counters;
  const out: Record<string, unknown> = {};
  // TLS: the certificates served (no secret: names, expiry, source file) and how rotations went.
  const certs = renderer.opts.tls?.certs();
  const tls = certs ? { certificates: certs.entries.map((e) => ({ file: e.source, hosts: e.hosts, subject: e.info.subject, notAfter: e.info.notAfter, serial: e.info.serial })), ...renderer.opts.tls!.manager.counters } : undefined;
  for (const spec of renderer.opts.specs) {
    const slots = state?.applied.slots[spec.name] ?? [];
    const servers: RenderServerStatus[] = !renderer.opts.applier.stats
      ? slots.flatMap((slot, i) => (slot ? [{ server: `s${i + 1}`, backend: slot.id, address: endpoint(slot), status: 'in config', sessions: 0, queue: 0, hits: 0, rate: 0, errors5xx: 0 }] : []))
      : stats
      .filter((s) => s.backend === backendName(spec.name))
      .map((s) => {
        const slot = slots[Number(s.server.slice(1)) - 1] ?? null;
        return { server: s.server, backend: slot?.id ?? null, address: s.address, status: s.status, sessions: s.scur, queue: s.qcur, hits: s.stot, rate: s.rate, errors5xx: s.hrsp5xx };
      })
      .filter((s) => s.backend !== null || s.status !== 'MAINT');
    out[spec.name] = {
      proxy: renderer.opts.applier.proxy,
      output: renderer.opts.output,
      bind: `${spec.bind.address}:${spec.bind.port}`,
      backends: state?.backends[spec.name]?.length ?? 0,
      slots: slots.length,
      drained: [...renderer.drained],
      draining: [...renderer.draining],
      counters,
      lastRender,
      lastApply,
      lastRefusal,
      lastError,
      servers,
      statsError,
      ...(tls && spec.tls ? { tls } : {}),
    };
  }
  return out;
}
