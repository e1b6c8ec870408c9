import { describeError, ExitCode, UserError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import type { Renderer } from './renderer.js';

/**
 * The drain contract (docs/ARCHITECTURE.md) for the proxies render drives, one definition for
 * `render --watch` and `elastic run`: find the backend's slot, keep it out of later passes, then
 * HAProxy drains the slot through its runtime API and waits for its sessions; nginx and Varnish
 * (no runtime API) get a pass that renders without it (graceful reload / new VCL: in-flight
 * requests finish on the old workers / VCL). A runtime drain that fails (HAProxy busy or
 * reloading) still takes the backend out through such a pass; the warning says why its sessions
 * were not waited for.
 */
export interface SlotDrain {
  readonly service: string;
  /** The backend's id. */
  readonly backend: string;
  readonly endpoint: string;
  /** The HAProxy server the runtime drain used (absent: a config pass took it out). */
  readonly server?: string;
  readonly drained: boolean;
  readonly sessions: number;
  readonly ms: number;
}

/** Runs a pass now (with the drained set as it is) and resolves once it is done. */
export type RunPass = () => Promise<void>;

/** Run a pass and say whether the backend is (out) or is not (!out) out of the applied config. */
export async function passFor(renderer: Renderer, service: string, id: string, out: boolean, run: RunPass): Promise<{ drained: boolean; ms: number }> {
  const t0 = Date.now();
  await run();
  const inConfig = ((await renderer.state())?.applied.slots[service] ?? []).some((s) => s?.id === id);
  return { drained: out ? !inConfig : inConfig, ms: Date.now() - t0 };
}

/** Find a rendered backend by id or address:port in a service's applied slots. */
export async function findSlot(renderer: Renderer, service: string, backend: string) {
  const slots = (await renderer.state())?.applied.slots[service];
  if (!slots) throw new UserError(`service ${service} is not rendered here`, 'check the service name', ExitCode.usage);
  const index = slots.findIndex((s) => s && (s.id === backend || `${s.address}:${s.port}` === backend));
  if (index < 0) throw new UserError(`backend ${backend} is not in service ${service}`, 'pass its id or ADDRESS:PORT', ExitCode.usage);
  return { ...slots[index]!, index };
}

/** The rendered services (all, or only `only`) that serve address:port, as drain targets. */
export async function servicesServing(renderer: Renderer, address: string, port: number, only?: string): Promise<Array<{ service: string; backend: string }>> {
  const slots = (await renderer.state())?.applied.slots ?? {};
  const ep = `${address}:${port}`;
  return Object.entries(slots)
    .filter(([service, list]) => (only === undefined || service === only) && list.some((s) => s && `${s.address}:${s.port}` === ep))
    .map(([service]) => ({ service, backend: ep }));
}

/** Drain one backend (id or ADDR:PORT) of one rendered service; see the comment at the top. */
export async function drainSlot(renderer: Renderer, target: { service: string; backend: string }, o: { timeoutMs: number; signal?: AbortSignal; pass: RunPass; logger?: Logger }): Promise<SlotDrain> {
  const slot = await findSlot(renderer, target.service, target.backend);
  renderer.drained.add(slot.id);
  const applier = renderer.opts.applier;
  const base = { service: target.service, backend: slot.id, endpoint: `${slot.address}:${slot.port}` };
  const server = `s${slot.index + 1}`;
  if (applier.drain) {
    try {
      return { ...base, server, ...(await applier.drain(target.service, server, o.timeoutMs, o.signal)) };
    } catch (err) {
      (o.logger ?? nullLogger).warn(`drain ${slot.id} through the runtime API failed; rendering without it`, { error: describeError(err) });
    }
  }
  return { ...base, sessions: 0, ...(await passFor(renderer, target.service, slot.id, true, o.pass)) };
}
