import type { BackendRow, ServiceRow, TimelineEvent, TopState } from '../../engine/top/store.js';
import { filterRows, sortRows } from '../../engine/top/query.js';
import { BACKEND_COLUMNS, BACKEND_FIELDS, SERVICE_COLUMNS, SERVICE_FIELDS, type Column } from './columns.js';
import type { UiState } from './keys.js';
import type { TopHost } from '../../engine/top/fleet.js';

/** The rows each view shows: the store's rows, filtered and sorted by the UI state (pure). */
export interface ViewRows {
  readonly services: readonly ServiceRow[];
  readonly backends: readonly BackendRow[];
  readonly drill: ServiceRow | undefined;
  readonly drillBackends: readonly BackendRow[];
  /** Newest first. */
  readonly timeline: readonly TimelineEvent[];
  /** The fleet's hosts (Hosts view), by name. */
  readonly hosts: readonly TopHost[];
}

function sortBy<R extends { key: string }>(rows: readonly R[], cols: readonly Column<R>[], sort: { col: string; reverse: boolean }): R[] {
  const col = cols.find((c) => c.id === sort.col) ?? cols[0]!;
  return sortRows(rows, col.sort, sort.reverse);
}

export function viewRows(state: TopState, ui: UiState): ViewRows {
  const services = sortBy(filterRows(state.services, ui.view === 'overview' ? ui.filter : '', SERVICE_FIELDS), SERVICE_COLUMNS, ui.sort.overview);
  const backends = ui.view === 'backends' ? sortBy(filterRows(state.backends, ui.filter, BACKEND_FIELDS), BACKEND_COLUMNS, ui.sort.backends) : [];
  const drill = ui.drill ? state.services.find((s) => s.key === ui.drill) : undefined;
  const drillBackends =
    ui.view === 'service' && ui.drill ? sortBy(filterRows(state.backends.filter((b) => b.serviceKey === ui.drill), ui.filter, BACKEND_FIELDS), BACKEND_COLUMNS, ui.sort.service) : [];
  const timeline = ui.view === 'timeline' ? filterRows([...state.timeline].reverse(), ui.filter, TIMELINE_FIELDS) : [];
  const hosts = ui.view === 'hosts' ? filterRows(state.fleet?.hosts ?? [], ui.filter, HOST_FIELDS) : [];
  return { services, backends, drill, drillBackends, timeline, hosts };
}

const HOST_FIELDS = {
  host: (h: TopHost) => h.name,
  state: (h: TopHost) => `${h.alive ? 'alive' : 'stale'} ${h.converged ? 'converged' : 'diverged'}${h.leader ? ' leader' : ''}${h.refusal ? ' refused' : ''}`,
  service: (h: TopHost) => h.services.map((s) => s.service).join(' '),
};

const TIMELINE_FIELDS = {
  type: (e: TimelineEvent) => e.type,
  source: (e: TimelineEvent) => e.sourceId,
  service: (e: TimelineEvent) => e.service ?? '',
  message: (e: TimelineEvent) => e.message,
};

export function rowCount(rows: ViewRows, ui: UiState): number {
  return ui.view === 'overview' ? rows.services.length : ui.view === 'backends' ? rows.backends.length : ui.view === 'service' ? rows.drillBackends.length : ui.view === 'hosts' ? rows.hosts.length : rows.timeline.length;
}

/**
 * The first visible row: keep the previous window while the cursor is inside it, scroll just
 * enough when it leaves (no jumping), and never leave empty space below the last row.
 */
export function scrollOffset(previous: number, cursor: number, height: number, total: number): number {
  if (height <= 0 || total <= height) return 0;
  let top = Math.min(previous, total - height);
  if (cursor < top) top = cursor;
  else if (cursor >= top + height) top = cursor - height + 1;
  return Math.max(0, Math.min(top, total - height));
}
