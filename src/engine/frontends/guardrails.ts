/**
 * Guardrails before anything goes live: consul-template's worst outages are empty renders.
 * - fewer than `minBackends` backends in a service: refused, always (set 0 to allow empty);
 * - more than `maxChangePct` percent of a service's backends removed in one step: refused
 *   unless `force` (a discovery hiccup looks exactly like a mass removal).
 * A refusal keeps the last good config serving; the caller logs it and shows it in status.
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

export function checkGuardrails(
  previous: Readonly<Record<string, readonly string[]>> | undefined,
  next: Readonly<Record<string, readonly string[]>>,
  g: Guardrails,
): Refusal[] {
  const refusals: Refusal[] = [];
  for (const [service, ids] of Object.entries(next)) {
    if (ids.length < g.minBackends) {
      refusals.push({ service, rule: 'min-backends', message: `${service}: ${ids.length} backend${ids.length === 1 ? '' : 's'}, below --min-backends ${g.minBackends}` });
      continue;
    }
    const before = previous?.[service];
    if (!before || before.length === 0 || g.force) continue;
    const keep = new Set(ids);
    const removed = before.filter((id) => !keep.has(id)).length;
    const pct = (removed / before.length) * 100;
    if (pct > g.maxChangePct) {
      refusals.push({ service, rule: 'max-change', message: `${service}: ${removed} of ${before.length} backends would be removed (${Math.round(pct)}% > --max-change ${g.maxChangePct}%)` });
    }
  }
  return refusals;
}
