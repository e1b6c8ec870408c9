import { formatBytes } from '../table.js';

/** Compact numbers for narrow columns: `-` unknown, `0`, `12.5`, `812`, `1.2k`, `3.4M`. */
export function formatRate(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '-';
  if (n === 0) return '0';
  const a = Math.abs(n);
  if (a < 10) return n.toFixed(1);
  if (a < 1000) return String(Math.round(n));
  if (a < 1e6) return `${(n / 1e3).toFixed(a < 1e4 ? 1 : 0)}k`;
  if (a < 1e9) return `${(n / 1e6).toFixed(a < 1e7 ? 1 : 0)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '-';
  return n < 100_000 ? String(Math.round(n)) : formatRate(n);
}

export function formatBytesRate(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '-';
  return formatBytes(Math.round(n)).replace('iB', '');
}

export function formatMs(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '-';
  return n < 10 ? `${n.toFixed(1)}ms` : n < 10_000 ? `${Math.round(n)}ms` : `${(n / 1000).toFixed(0)}s`;
}

/** `hh:mm:ss` of a time, local to the operator. */
export function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Cut or pad to exactly `width` cells (text is printable ASCII/BMP: one cell per char here). */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return '';
  const t = text.length > width ? (width === 1 ? text.slice(0, 1) : `${text.slice(0, width - 1)}~`) : text;
  return align === 'right' ? t.padStart(width) : t.padEnd(width);
}
