import { endpoint } from '../model/backend.js';
import { printable } from '../model/validate.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import { listStatusSockets, requestStatus, type Snapshot } from '../runtime/status.js';

/**
 * The drain contract (docs/ARCHITECTURE.md), deploy's side: before an old replica is stopped, every
 * load balancer elastic runs on this host (map-image, render, edge status sockets) is asked, in
 * parallel, to take it out and answer once its connections are gone or the timeout passed.
 * A socket that does not serve the backend is "not ours"; one that serves it but could not drain
 * it ("failed") or did not answer in time ("no answer") is a warning with its reason. None of
 * them blocks a rollout forever.
 */
/** Kinds that run load balancers and answer `drain`; `run` hosts all of them in one daemon. */
export const LB_KINDS = ['map-image', 'render', 'edge', 'run'] as const;

export interface DrainOutcome {
  readonly socket: string; // kind.name
  readonly outcome: 'drained' | 'timeout' | 'not ours' | 'failed' | 'no answer';
  readonly remaining?: number;
  readonly detail?: string;
}

export interface DrainTarget {
  readonly service: string;
  readonly address: string;
  readonly port: number;
}

export async function drainEverywhere(t: DrainTarget, timeoutMs: number, opts: { runDir?: string; logger?: Logger } = {}): Promise<DrainOutcome[]> {
  const log = opts.logger ?? nullLogger;
  const sockets = (await listStatusSockets(opts.runDir)).filter((s) => (LB_KINDS as readonly string[]).includes(s.kind));
  const ep = endpoint(t);
  // A superset of the arguments each kind reads: map-image {address, port}, render {service,
  // backend}, edge {app}; each ignores the rest.
  const args = { address: t.address, port: t.port, timeoutMs, service: t.service, backend: ep, app: ep };
  const requests = (
    await Promise.all(
      sockets.map(async (s) => {
        if (s.kind !== 'render') return [{ s, args }];
        // render drains per frontend service: the ones serving this endpoint. Without the service
        // the render finds them itself ({address, port}; none: it answers with no services).
        const services = await renderServicesOf(s.path, ep);
        const { service: _, ...byAddress } = args;
        return services.length ? services.map((service) => ({ s, args: { ...args, service } })) : [{ s, args: byAddress }];
      }),
    )
  ).flat();
  return Promise.all(
    requests.map(async ({ s, args }): Promise<DrainOutcome> => {
      const socket = `${s.kind}.${s.name}`;
      let out: DrainOutcome;
      try {
        const r = await requestStatus<Record<string, unknown>>(s.path, { op: 'action', action: 'drain', args }, timeoutMs + 3000);
        if (r.ok !== true) out = { socket, outcome: 'failed', detail: printable(String(r.error ?? 'refused'), 120) };
        else if (r.nodes === 0 || (Array.isArray(r.mappings) && r.mappings.length === 0) || (Array.isArray(r.services) && r.services.length === 0)) out = { socket, outcome: 'not ours' };
        else {
          const remaining = typeof r.remaining === 'number' ? r.remaining : typeof r.sessions === 'number' ? r.sessions : undefined;
          out = { socket, outcome: r.drained === false ? 'timeout' : 'drained', remaining };
        }
      } catch (err) {
        out = { socket, outcome: 'no answer', detail: printable((err as Error).message, 120) };
      }
      log[out.outcome === 'drained' || out.outcome === 'not ours' ? 'debug' : 'warn'](`drain ${ep} at ${socket}: ${out.outcome}`, { detail: out.detail, remaining: out.remaining });
      return out;
    }),
  );
}

async function renderServicesOf(path: string, ep: string): Promise<string[]> {
  try {
    const snap = await requestStatus<Snapshot>(path, { op: 'snapshot' }, 1500);
    return Object.entries(snap.services ?? {})
      .filter(([, c]) => Array.isArray((c as { servers?: unknown }).servers) && (c as { servers: Array<{ address?: unknown }> }).servers.some((x) => x?.address === ep))
      .map(([name]) => name);
  } catch {
    return [];
  }
}
