import type { RenderResult } from '../engine/frontends/renderer.js';
import { printable } from '../engine/model/validate.js';

/** Plain text for a render result on stdout (the JSON form is the result object itself). */
export function renderResultText(r: RenderResult): string {
  const counts = Object.entries(r.backends).map(([s, n]) => `${s}=${n}`).join(' ');
  const lines: string[] = [];
  if (r.action === 'dry-run') {
    lines.push(`dry run (${r.proxy}, ${r.output}): ${r.diff?.summary ?? r.reason}`);
    if (r.textDiff) lines.push(r.textDiff.trimEnd());
    else lines.push('(config text unchanged)');
  } else if (r.action === 'checked') {
    lines.push(`ok: ${r.reason} (${r.output}, backends ${counts})`);
  } else if (r.action === 'refused') {
    lines.push(`refused: ${r.reason}`);
  } else {
    const what = { none: 'unchanged, nothing applied', runtime: `runtime API: ${r.ops} command${r.ops === 1 ? '' : 's'}, no reload`, reload: 'reloaded', start: 'started', written: 'written, not applied (--no-apply)' }[r.action];
    lines.push(`${r.proxy} ${r.output}: ${what} (${printable(r.reason, 200)}; backends ${counts}; ${r.ms} ms)`);
  }
  return `${lines.join('\n')}\n`;
}

/** Parse --wait MIN[:MAX] with units ms/s/m (a bare number is seconds). MAX defaults to 4x MIN. */
export function parseWait(text: string): { minMs: number; maxMs: number } | null {
  const one = (t: string): number | null => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(t.trim());
    if (!m) return null;
    const n = Number(m[1]);
    return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
  };
  const [a, b] = text.split(':');
  const minMs = one(a ?? '');
  const maxMs = b === undefined ? (minMs === null ? null : minMs * 4) : one(b);
  if (minMs === null || maxMs === null || maxMs < minMs) return null;
  return { minMs, maxMs };
}
