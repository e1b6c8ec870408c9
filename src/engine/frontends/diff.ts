import type { ApplyPlan } from './applier.js';

/**
 * What --dry-run shows: a semantic summary ("web: +2 backends, -1; runtime-only") and a line
 * diff of the config text. Both pure.
 */
export interface ServiceDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

export interface SemanticDiff {
  readonly action: ApplyPlan['action'];
  readonly reason: string;
  readonly services: Readonly<Record<string, ServiceDiff>>;
  readonly summary: string;
}

export function semanticDiff(previous: Readonly<Record<string, readonly string[]>> | undefined, next: Readonly<Record<string, readonly string[]>>, plan: ApplyPlan): SemanticDiff {
  const services: Record<string, ServiceDiff> = {};
  const parts: string[] = [];
  for (const [name, ids] of Object.entries(next)) {
    const before = new Set(previous?.[name] ?? []);
    const now = new Set(ids);
    const added = ids.filter((id) => !before.has(id));
    const removed = [...before].filter((id) => !now.has(id));
    services[name] = { added, removed };
    if (added.length || removed.length) parts.push(`${name}: +${added.length} backend${added.length === 1 ? '' : 's'}, -${removed.length}`);
  }
  for (const name of Object.keys(previous ?? {})) if (!(name in next)) parts.push(`${name}: service removed`);
  const how = plan.action === 'none' ? 'nothing to apply' : plan.action === 'runtime' ? 'runtime-only (no reload)' : `structural: reload (${plan.reason})`;
  return { action: plan.action, reason: plan.reason, services, summary: `${parts.length ? parts.join('; ') : 'no backend changes'}; ${how}` };
}

/** A unified-style line diff (LCS); configs are small, so O(n*m) is fine up to a cap. */
export function textDiff(before: string, after: string, context = 2): string {
  const a = before.split('\n');
  const b = after.split('\n');
  if (before === after) return '';
  if (a.length * b.length > 4_000_000) return `--- live (${a.length} lines)\n+++ rendered (${b.length} lines)\n(too large to diff)\n`;
  const lcs: Uint32Array[] = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: Array<{ t: ' ' | '-' | '+'; line: string }> = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) ops.push({ t: ' ', line: a[i++]! }), j++;
    else if (j < b.length && (i >= a.length || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) ops.push({ t: '+', line: b[j++]! });
    else ops.push({ t: '-', line: a[i++]! });
  }
  const keep = ops.map((op, k) => op.t !== ' ' || ops.slice(Math.max(0, k - context), k + context + 1).some((o) => o.t !== ' '));
  const out = ['--- live', '+++ rendered'];
  let skipped = false;
  ops.forEach((op, k) => {
    if (keep[k]) {
      out.push(`${op.t}${op.line}`);
      skipped = false;
    } else if (!skipped) {
      out.push('@@');
      skipped = true;
    }
  });
  return `${out.join('\n')}\n`;
}
