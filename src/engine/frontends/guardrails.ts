import { connect } from 'node:net';

/**
 * Guardrails before anything goes live: consul-template's worst outages are empty renders. ONE
 * definition, used by `elastic run` (every applier of a service: HAProxy, nginx, Varnish, kernel
 * DNAT) and by `elastic render` (docs/run.md "Guardrails").
 *
 * Guardrails protect against discovery going wrong (an empty or mostly-empty answer), never
 * against removing backends that are really going away. A backend that left the set is:
 * - an intended removal when it is known to be going away: drained (a deploy or `top` asked),
 *   failing its health check, or gone (it no longer accepts a TCP connection: the container
 *   stopped or was removed). Intended removals are always applied and never counted;
 * - a suspicious removal otherwise (it still answers, but discovery no longer lists it).
 * Rules, per service, over suspicious removals only:
 * - `max-change`: more than `maxChangePct` percent of the last accepted set removed suspiciously
 *   in one step is refused;
 * - `min-backends`: fewer than `minBackends` backends while a suspicious removal would cause it is
 *   refused; with no accepted set yet (first sync), fewer than `minBackends` is refused too.
 * A refusal refuses only the suspicious removals: they keep serving, and everything else (every
 * addition, every intended removal) is applied, so a refused state never blocks later additions.
 * `force` lifts both rules. The caller logs a refusal and shows it in status.
 */
export interface Guardrails {
  readonly minBackends: number;
  readonly maxChangePct: number;
  readonly force: boolean;
}

export interface Refusal {
  readonly service: string;
  readonly rule: 'min-backends' | 'max-change';
  readonly message: string;
}

/** What the guardrails need of a backend. */
export interface GuardBackend {
  readonly id: string;
  readonly address: string;
  readonly port: number;
}

export interface GuardOptions {
  /** Ids known to be going away (drained, failing their health check). */
  readonly intended?: ReadonlySet<string>;
  /** Is this backend gone (dead)? Default: no TCP connection within 1 s. Asked only when a rule would refuse. */
  readonly isGone?: (b: GuardBackend) => Promise<boolean>;
}

export interface GuardVerdict<B extends GuardBackend> {
  /** What to serve: the new set plus the removals refused (kept from the previous set), sorted by id. */
  readonly backends: B[];
  /** Ids whose removal was refused (still served). */
  readonly kept: readonly string[];
  readonly refusals: Refusal[];
  /** No accepted set yet and too few backends: nothing may be applied (wait). */
  readonly blocked: boolean;
}

export async function checkGuardrails<B extends GuardBackend>(service: string, previous: readonly B[] | undefined, next: readonly B[], g: Guardrails, opts: GuardOptions = {}): Promise<GuardVerdict<B>> {
  const plural = (n: number) => `${n} backend${n === 1 ? '' : 's'}`;
  const sorted = (set: B[]) => set.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (!previous) {
    if (g.force || next.length >= g.minBackends) return { backends: sorted([...next]), kept: [], refusals: [], blocked: false };
    return { backends: [], kept: [], refusals: [{ service, rule: 'min-backends', message: `${service}: ${plural(next.length)}, below --min-backends ${g.minBackends}` }], blocked: true };
  }
  const nextIds = new Set(next.map((b) => b.id));
  let suspicious = previous.filter((b) => !nextIds.has(b.id) && !opts.intended?.has(b.id));
  const refusalsOf = (removed: readonly B[]): Refusal[] => {
    if (g.force || removed.length === 0) return [];
    const out: Refusal[] = [];
    if (next.length < g.minBackends) out.push({ service, rule: 'min-backends', message: `${service}: ${plural(next.length)}, below --min-backends ${g.minBackends}` });
    const pct = (removed.length / previous.length) * 100;
    if (pct > g.maxChangePct) out.push({ service, rule: 'max-change', message: `${service}: ${removed.length} of ${previous.length} backends would be removed while still answering (${Math.round(pct)}% > --max-change ${g.maxChangePct}%)` });
    return out;
  };
  if (refusalsOf(suspicious).length > 0) {
    // Only now (a rule would refuse) ask which of them are really gone.
    const isGone = opts.isGone ?? tcpGone;
    const gone = await Promise.all(suspicious.map((b) => isGone(b).catch(() => false)));
    suspicious = suspicious.filter((_, i) => !gone[i]);
  }
  const refusals = refusalsOf(suspicious);
  const kept = refusals.length ? suspicious : [];
  return { backends: sorted([...next, ...kept]), kept: kept.map((b) => b.id), refusals, blocked: false };
}

/** A backend is gone when nothing accepts a TCP connection on it within `timeoutMs`. */
export function tcpGone(b: GuardBackend, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: b.address, port: b.port });
    const done = (gone: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(gone);
    };
    const timer = setTimeout(() => done(true), timeoutMs);
    s.once('connect', () => done(false));
    s.once('error', () => done(true));
  });
}
