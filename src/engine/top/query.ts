/**
 * Filter and sort for top's tables (pure). A filter is whitespace-separated terms that must all
 * match, case-insensitively: `web` (any field contains it), `health:unhealthy` or `kind=edge`
 * (that field contains it), `!draining` (no field contains it). Sorting is stable, puts rows
 * without a value last in either direction, and breaks ties by row key so rows do not jump
 * between frames.
 */
export type FieldGetter<R> = (row: R) => string | number | null;

export interface Term {
  field?: string;
  value: string;
  negate: boolean;
}

export function parseFilter(text: string): Term[] {
  return text
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((raw) => {
      const negate = raw.startsWith('!');
      const body = negate ? raw.slice(1) : raw;
      const m = /^([a-z][a-z0-9]*)[:=](.*)$/i.exec(body);
      return m ? { field: m[1]!.toLowerCase(), value: m[2]!.toLowerCase(), negate } : { value: body.toLowerCase(), negate };
    })
    .filter((t) => t.value !== '' || t.field !== undefined);
}

export function filterRows<R>(rows: readonly R[], text: string, fields: Readonly<Record<string, FieldGetter<R>>>): readonly R[] {
  const terms = parseFilter(text);
  if (terms.length === 0) return rows;
  const names = Object.keys(fields);
  return rows.filter((row) =>
    terms.every((t) => {
      const known = t.field !== undefined ? fields[t.field] : undefined;
      // An unknown field name is matched as plain text ("a:b" may be part of an address).
      const getters = known ? [known] : names.map((n) => fields[n]!);
      const needle = known || t.field === undefined ? t.value : `${t.field}:${t.value}`;
      const hit = getters.some((g) => String(g(row) ?? '').toLowerCase().includes(needle));
      return t.negate ? !hit : hit;
    }),
  );
}

const collator = new Intl.Collator('en', { numeric: true });

export function sortRows<R extends { key: string }>(rows: readonly R[], get: FieldGetter<R>, reverse: boolean): R[] {
  const decorated = rows.map((r) => ({ r, v: get(r) }));
  decorated.sort((a, b) => {
    const an = a.v === null || a.v === '' || (typeof a.v === 'number' && Number.isNaN(a.v));
    const bn = b.v === null || b.v === '' || (typeof b.v === 'number' && Number.isNaN(b.v));
    if (an !== bn) return an ? 1 : -1;
    let c = 0;
    if (!an) c = typeof a.v === 'number' && typeof b.v === 'number' ? a.v - b.v : collator.compare(String(a.v), String(b.v));
    if (reverse) c = -c;
    // Ties in key order, numbers compared as numbers: 198.18.1.2 before 198.18.1.10.
    return c !== 0 ? c : collator.compare(a.r.key, b.r.key);
  });
  return decorated.map((d) => d.r);
}
