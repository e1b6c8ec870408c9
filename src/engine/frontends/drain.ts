import { describeError, ExitCode, UserError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import type { Renderer } from './renderer.js';

/**
 * The drain contract (docs/ARCHITECTURE.md) for the proxies render drives, one definition for
 * `render --watch` and `elastic run`. A drain is desired state, applied only by passes of the
 * renderer's one runner (a drain that wrote to HAProxy beside a pass made that pass see a state it
 * did not plan, and its reload forgot the drain): HAProxy gets a pass that keeps the backend in
 * its slot with weight 0 (no new sessions; a reload keeps it, the config says so), render waits
 * for the slot's sessions, then a pass takes it out (slot empty, `maint`). nginx and Varnish
 * (no session counts) get the pass that takes it out (graceful reload / new VCL: in-flight
 * requests finish on the old workers / VCL). Reading the sessions failing (HAProxy busy or
 * reloading) still takes the backend out; the warning says why its sessions were not waited for.
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
  /** An undrain came while the sessions were waited for: the backend stays in rotation. */
  readonly cancelled?: boolean;
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
export async function drainSlot(
  renderer: Renderer,
  target: { service: string; backend: string },
  o: { timeoutMs: number; signal?: AbortSignal; pass: RunPass; logger?: Logger; onSlot?: (s: { backend: string; endpoint: string }) => void },
): Promise<SlotDrain> {
  const slot = await findSlot(renderer, target.service, target.backend);
  const applier = renderer.opts.applier;
  const base = { service: target.service, backend: slot.id, endpoint: `${slot.address}:${slot.port}` };
  o.onSlot?.(base);
  const takeOut = () => {
    renderer.draining.delete(slot.id);
    renderer.drained.add(slot.id);
  };
  if (applier.waitSessions && !renderer.drained.has(slot.id)) {
    const t0 = Date.now();
    let server: string | undefined;
    let sessions = 0;
    try {
      renderer.draining.add(slot.id);
      await o.pass();
      // The slot as the pass left it (it keeps a draining backend's slot; gone: nothing to wait for).
      const at = (await renderer.state())?.applied.slots[target.service]?.findIndex((s) => s?.id === slot.id) ?? -1;
      if (at >= 0) {
        server = `s${at + 1}`;
        sessions = await applier.waitSessions(target.service, server, o.timeoutMs, o.signal);
      }
    } catch (err) {
      if (renderer.draining.has(slot.id)) (o.logger ?? nullLogger).warn(`waiting for the sessions of ${slot.id} failed; taking it out without waiting`, { error: describeError(err) });
    }
    // Undrained meanwhile (the undrain took it out of `draining` and ran its own pass): stay in.
    if (!renderer.draining.has(slot.id)) return { ...base, ...(server ? { server } : {}), drained: false, cancelled: true, sessions, ms: Date.now() - t0 };
    takeOut();
    const out = await passFor(renderer, target.service, slot.id, true, o.pass);
    return { ...base, ...(server ? { server } : {}), drained: out.drained && sessions === 0, sessions, ms: Date.now() - t0 };
  }
  takeOut();
  return { ...base, sessions: 0, ...(await passFor(renderer, target.service, slot.id, true, o.pass)) };
}
