import type { BackendRow, ServiceRow } from '../../engine/top/store.js';
import type { FieldGetter } from '../../engine/top/query.js';
import { fit, formatBytesRate, formatCount, formatMs, formatRate } from './format.js';

/**
 * Table columns of the overview and backends views: title, width, how to show a cell and how to
 * sort by it. `layout()` fits them to the terminal: columns with a lower priority go first when
 * the width runs out, and `flex` columns share what is left.
 */
export interface Column<R> {
  readonly id: string;
  readonly title: string;
  readonly width: number;
  readonly align?: 'left' | 'right';
  /** Higher stays longer on narrow terminals. */
  readonly priority: number;
  readonly flex?: boolean;
  readonly text: (row: R) => string;
  readonly sort: FieldGetter<R>;
}

export interface Placed<R> {
  readonly col: Column<R>;
  readonly width: number;
}

/** The columns that fit in `width` (one space between columns, `lead` cells before the first). */
export function layout<R>(columns: readonly Column<R>[], width: number, lead = 2): Placed<R>[] {
  const keep = [...columns];
  const need = (cols: readonly Column<R>[]) => cols.reduce((s, c) => s + c.width, 0) + Math.max(0, cols.length - 1) + lead;
  while (keep.length > 1 && need(keep) > width) {
    const drop = keep.reduce((lo, c) => (c.priority < lo.priority ? c : lo));
    keep.splice(keep.indexOf(drop), 1);
  }
  const flex = keep.filter((c) => c.flex);
  const spare = Math.max(0, width - need(keep));
  const each = flex.length ? Math.floor(spare / flex.length) : 0;
  const last = flex[flex.length - 1];
  return keep.map((c) => ({ col: c, width: c.width + (c.flex ? each + (c === last ? spare - each * flex.length : 0) : 0) }));
}

export function headerLine<R>(placed: readonly Placed<R>[], lead = 2): string {
  return ' '.repeat(lead) + placed.map((p) => fit(p.col.title, p.width, p.col.align)).join(' ');
}

export function rowCells<R>(placed: readonly Placed<R>[], row: R): string[] {
  return placed.map((p) => fit(p.col.text(row), p.width, p.col.align));
}

const rateText = (r: ServiceRow) => (r.rate === null ? '-' : `${formatRate(r.rate)} ${r.rateUnit.replace('/s', '')}`);

export const SERVICE_COLUMNS: readonly Column<ServiceRow>[] = [
  { id: 'service', title: 'SERVICE', width: 12, priority: 10, flex: true, text: (r) => r.label, sort: (r) => r.label },
  { id: 'kind', title: 'KIND', width: 9, priority: 8, text: (r) => r.kind, sort: (r) => r.kind },
  { id: 'backends', title: 'BACKENDS', width: 8, align: 'right', priority: 9, text: (r) => (r.kind === 'map-image' || r.backends === r.healthy || r.healthy === 0 ? String(r.backends) : `${r.healthy}/${r.backends}`), sort: (r) => r.backends },
  { id: 'rate', title: 'RATE/S', width: 10, align: 'right', priority: 9, text: rateText, sort: (r) => r.rate },
  { id: 'bytes', title: 'BYTES/S', width: 8, align: 'right', priority: 4, text: (r) => formatBytesRate(r.bytesRate), sort: (r) => r.bytesRate },
  { id: 'conns', title: 'CONNS', width: 6, align: 'right', priority: 7, text: (r) => formatCount(r.connections), sort: (r) => r.connections },
  { id: 'queued', title: 'QUEUED', width: 6, align: 'right', priority: 7, text: (r) => formatCount(r.queued), sort: (r) => r.queued },
  { id: 'p99', title: 'WAIT99', width: 6, align: 'right', priority: 3, text: (r) => formatMs(r.waitP99Ms), sort: (r) => r.waitP99Ms },
  { id: 'scale', title: 'REPL', width: 5, align: 'right', priority: 2, text: (r) => (r.replicas === null ? (r.nodes === null ? '-' : `${r.nodes}n`) : r.desired === null ? String(r.replicas) : `${r.replicas}/${r.desired}`), sort: (r) => r.replicas ?? r.nodes },
];

export const BACKEND_COLUMNS: readonly Column<BackendRow>[] = [
  { id: 'address', title: 'ADDRESS', width: 15, priority: 10, flex: true, text: (r) => r.endpoint, sort: (r) => r.endpoint },
  { id: 'service', title: 'SERVICE', width: 10, priority: 9, flex: true, text: (r) => r.service, sort: (r) => r.service },
  { id: 'source', title: 'SOURCE', width: 6, priority: 6, text: (r) => (r.origin === r.kind ? r.kind : r.origin), sort: (r) => r.origin },
  { id: 'health', title: 'HEALTH', width: 9, priority: 8, text: (r) => (r.state === 'running' || r.state === '-' ? r.health : r.state), sort: (r) => `${r.state === 'running' ? '' : r.state}${r.health}` },
  { id: 'pkt', title: 'PKT/S', width: 6, align: 'right', priority: 7, text: (r) => formatRate(r.pktRate), sort: (r) => r.pktRate },
  { id: 'bytes', title: 'BYTES/S', width: 7, align: 'right', priority: 7, text: (r) => formatBytesRate(r.bytesRate), sort: (r) => r.bytesRate },
  { id: 'sessions', title: 'SESS', width: 5, align: 'right', priority: 6, text: (r) => formatCount(r.sessions), sort: (r) => r.sessions },
  { id: 'queued', title: 'QUEUE', width: 5, align: 'right', priority: 6, text: (r) => formatCount(r.queued), sort: (r) => r.queued },
  { id: 'hits', title: 'REQ/S', width: 6, align: 'right', priority: 3, text: (r) => formatRate(r.hitRate), sort: (r) => r.hitRate },
  { id: 'name', title: 'NAME', width: 12, priority: 2, text: (r) => r.name, sort: (r) => r.name },
  { id: 'kind', title: 'VIA', width: 9, priority: 1, text: (r) => r.kind, sort: (r) => r.kind },
];

/** What `/` matches: field names usable as `field:value`. */
export const SERVICE_FIELDS: Readonly<Record<string, FieldGetter<ServiceRow>>> = {
  service: (r) => r.service,
  kind: (r) => r.kind,
  role: (r) => r.role,
  source: (r) => r.sourceId,
};

export const BACKEND_FIELDS: Readonly<Record<string, FieldGetter<BackendRow>>> = {
  address: (r) => r.endpoint,
  service: (r) => r.service,
  name: (r) => r.name,
  source: (r) => r.origin,
  health: (r) => r.health,
  state: (r) => r.state,
  kind: (r) => r.kind,
};
