import { parse } from 'yaml';
import { printable } from '../model/validate.js';

/**
 * The semantic diff of two fleet files: what changed in meaning, not in text. Lists keyed by a
 * name (services by `name`, deploys by `service`, and the same inside `hosts:`) are compared
 * entry by entry, so reordering is no change. Secrets are never shown: a changed value under a
 * key that names one reads `(secret changed)`.
 */
export interface Change {
  readonly op: '+' | '-' | '~';
  readonly path: string;
  readonly from?: string;
  readonly to?: string;
}

const SECRET_RE = /secret|password|token/i;
const KEYED: Record<string, string> = { services: 'name', deploys: 'service' };

export function semanticDiff(fromText: string | null, toText: string): Change[] {
  const a = fromText === null ? {} : safeParse(fromText);
  const b = safeParse(toText);
  const out: Change[] = [];
  walk(normalize(a), normalize(b), [], out);
  return out;
}

function safeParse(text: string): unknown {
  try {
    return parse(text, { maxAliasCount: 100 }) ?? {};
  } catch {
    return { '(unparsable)': text.length };
  }
}

/** Keyed lists become maps (by name), at any depth (hosts.<h>.services is already a map). */
function normalize(v: unknown, key?: string): unknown {
  if (Array.isArray(v)) {
    const by = key ? KEYED[key] : undefined;
    if (by && v.every((e) => e && typeof e === 'object' && typeof (e as Record<string, unknown>)[by] === 'string')) {
      return Object.fromEntries(v.map((e) => [(e as Record<string, string>)[by], normalize(e)]));
    }
    return v.map((e) => normalize(e));
  }
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x, k)]));
  return v;
}

function walk(a: unknown, b: unknown, path: string[], out: Change[]): void {
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const p = [...path, k];
      if (!(k in b)) out.push({ op: '-', path: printable(p.join('.'), 200) });
      else if (!(k in a)) out.push({ op: '+', path: printable(p.join('.'), 200), to: show(b[k], p) });
      else walk(a[k], b[k], p, out);
    }
    return;
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  const from = show(a, path);
  const to = show(b, path);
  out.push({ op: '~', path: printable(path.join('.'), 200), from, to: to === from ? '(a secret changed)' : to });
}

function show(v: unknown, path: string[]): string {
  if (path.some((p) => SECRET_RE.test(p))) return '(secret)';
  return printable(JSON.stringify(redact(v)) ?? 'null', 120);
}

function redact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redact);
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, SECRET_RE.test(k) ? '(secret)' : redact(x)]));
  return v;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

