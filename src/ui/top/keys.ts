import type { BackendRow, ServiceRow } from '../../engine/top/store.js';
import { BACKEND_COLUMNS, SERVICE_COLUMNS } from './columns.js';

/**
 * The dashboard's UI state and the keymap, as a pure reducer: (state, key, what is under the
 * cursor) -> (state, effect). The Ink component only renders; tests drive this directly or
 * through ink-testing-library.
 */
export type View = 'overview' | 'backends' | 'timeline' | 'hosts' | 'service';
export type TableView = 'overview' | 'backends' | 'service';

export interface PendingAction {
  readonly sourceId: string;
  readonly action: string; // drain, undrain, scale
  readonly args: Readonly<Record<string, unknown>>;
  /** The question the dialog asks. */
  readonly question: string;
}

export interface UiState {
  readonly view: View;
  /** Where Esc goes from the drill-down. */
  readonly back: View;
  /** The drilled-into service row key. */
  readonly drill: string | null;
  readonly cursor: Readonly<Record<View, number>>;
  readonly filter: string;
  readonly editing: boolean;
  readonly sort: Readonly<Record<TableView, { readonly col: string; readonly reverse: boolean }>>;
  readonly help: boolean;
  readonly confirm: PendingAction | null;
}

export interface KeyInfo {
  upArrow?: boolean;
  downArrow?: boolean;
  leftArrow?: boolean;
  rightArrow?: boolean;
  pageUp?: boolean;
  pageDown?: boolean;
  home?: boolean;
  end?: boolean;
  return?: boolean;
  escape?: boolean;
  backspace?: boolean;
  delete?: boolean;
  tab?: boolean;
  shift?: boolean;
  ctrl?: boolean;
}

export interface KeyContext {
  /** Row counts of the current view after filtering. */
  readonly rows: number;
  readonly pageSize: number;
  readonly service?: ServiceRow;
  readonly backend?: BackendRow;
  /** A fleet is shown: the Hosts tab (4) is there. */
  readonly fleet?: boolean;
}

export type Effect = { type: 'quit' } | { type: 'action'; pending: PendingAction } | null;

export function initialUi(opts: { view?: View; filter?: string; sort?: string; reverse?: boolean } = {}): UiState {
  const sortCol = (cols: readonly { id: string }[], fallback: string) => (opts.sort && cols.some((c) => c.id === opts.sort) ? opts.sort : fallback);
  return {
    view: opts.view === 'service' ? 'overview' : (opts.view ?? 'overview'),
    back: 'overview',
    drill: null,
    cursor: { overview: 0, backends: 0, timeline: 0, hosts: 0, service: 0 },
    filter: opts.filter ?? '',
    editing: false,
    sort: {
      overview: { col: sortCol(SERVICE_COLUMNS, 'service'), reverse: Boolean(opts.reverse) },
      backends: { col: sortCol(BACKEND_COLUMNS, 'service'), reverse: Boolean(opts.reverse) },
      service: { col: sortCol(BACKEND_COLUMNS, 'address'), reverse: Boolean(opts.reverse) },
    },
    help: false,
    confirm: null,
  };
}

const TABS: readonly View[] = ['overview', 'backends', 'timeline', 'hosts'];

function move(ui: UiState, to: number, rows: number): UiState {
  const c = Math.max(0, Math.min(Math.max(0, rows - 1), to));
  return c === ui.cursor[ui.view] ? ui : { ...ui, cursor: { ...ui.cursor, [ui.view]: c } };
}

export function reduceKey(ui: UiState, input: string, key: KeyInfo, ctx: KeyContext): { ui: UiState; effect: Effect } {
  const same = { ui, effect: null };
  // A confirmation dialog takes every key: y/Enter runs, anything else cancels.
  if (ui.confirm) {
    if (input === 'y' || input === 'Y' || key.return) return { ui: { ...ui, confirm: null }, effect: { type: 'action', pending: ui.confirm } };
    return { ui: { ...ui, confirm: null }, effect: null };
  }
  if (ui.editing) {
    if (key.return) return { ui: { ...ui, editing: false }, effect: null };
    if (key.escape) return { ui: { ...ui, editing: false, filter: '', cursor: { ...ui.cursor, [ui.view]: 0 } }, effect: null };
    if (key.backspace || key.delete) return { ui: { ...ui, filter: ui.filter.slice(0, -1) }, effect: null };
    if (input && !key.ctrl && /^[\x20-\x7e]+$/.test(input) && ui.filter.length < 60) return { ui: { ...ui, filter: ui.filter + input, cursor: { ...ui.cursor, [ui.view]: 0 } }, effect: null };
    return same;
  }
  if (ui.help) return input === 'q' && !key.ctrl ? { ui, effect: { type: 'quit' } } : { ui: { ...ui, help: false }, effect: null };

  const cur = ui.cursor[ui.view];
  if (input === 'q') return { ui, effect: { type: 'quit' } };
  if (input === '?') return { ui: { ...ui, help: true }, effect: null };
  if (input === '/') return { ui: { ...ui, editing: true }, effect: null };
  if (key.upArrow || input === 'k') return { ui: move(ui, cur - 1, ctx.rows), effect: null };
  if (key.downArrow || input === 'j') return { ui: move(ui, cur + 1, ctx.rows), effect: null };
  if (key.pageUp || (key.ctrl && input === 'b')) return { ui: move(ui, cur - ctx.pageSize, ctx.rows), effect: null };
  if (key.pageDown || (key.ctrl && input === 'f') || input === ' ') return { ui: move(ui, cur + ctx.pageSize, ctx.rows), effect: null };
  if (key.home || input === 'g') return { ui: move(ui, 0, ctx.rows), effect: null };
  if (key.end || input === 'G') return { ui: move(ui, ctx.rows - 1, ctx.rows), effect: null };
  const tabs = ctx.fleet ? TABS : TABS.slice(0, 3);
  if (input >= '1' && input <= String(tabs.length)) return { ui: { ...ui, view: tabs[Number(input) - 1]!, help: false }, effect: null };
  if (key.tab || key.rightArrow || key.leftArrow) {
    const at = ui.view === 'service' ? tabs.indexOf(ui.back) : tabs.indexOf(ui.view);
    const step = key.leftArrow || key.shift ? tabs.length - 1 : 1;
    return { ui: { ...ui, view: tabs[(Math.max(0, at) + step) % tabs.length]! }, effect: null };
  }
  if (key.escape) {
    if (ui.view === 'service') return { ui: { ...ui, view: ui.back, drill: null }, effect: null };
    if (ui.filter) return { ui: { ...ui, filter: '', cursor: { ...ui.cursor, [ui.view]: 0 } }, effect: null };
    return same;
  }
  if (key.return) {
    const target = ui.view === 'overview' ? ctx.service?.key : ui.view === 'backends' ? ctx.backend?.serviceKey : undefined;
    if (!target) return same;
    return { ui: { ...ui, view: 'service', back: ui.view, drill: target, cursor: { ...ui.cursor, service: 0 } }, effect: null };
  }
  if ((input === 's' || input === 'r') && ui.view !== 'timeline' && ui.view !== 'hosts') {
    const tv = ui.view as TableView;
    const cols = tv === 'overview' ? SERVICE_COLUMNS : BACKEND_COLUMNS;
    const now = ui.sort[tv];
    const next = input === 'r' ? { ...now, reverse: !now.reverse } : { col: cols[(cols.findIndex((c) => c.id === now.col) + 1) % cols.length]!.id, reverse: now.reverse };
    return { ui: { ...ui, sort: { ...ui.sort, [tv]: next } }, effect: null };
  }
  const pending = actionFor(ui, input, ctx);
  return pending ? { ui: { ...ui, confirm: pending }, effect: null } : same;
}

/** d: drain (wait for connections), x: disable (out now, no wait), u: undrain, +/-: scale a deploy. */
function actionFor(ui: UiState, input: string, ctx: KeyContext): PendingAction | null {
  const b = ui.view === 'backends' || ui.view === 'service' ? ctx.backend : undefined;
  if (b && (b.port !== null || b.id) && (input === 'd' || input === 'x' || input === 'u')) {
    const where = `${b.endpoint} (${b.service} in ${b.sourceId})`;
    // The drain contract names a backend by address and port (an edge node without an app address
    // by its id); render wants {service, backend}. Each reads what it knows and ignores the rest.
    const target = { ...(b.port !== null && b.address ? { address: b.address, port: b.port } : { node: b.id }), service: b.service, backend: b.id || b.endpoint };
    if (input === 'd') return { sourceId: b.sourceId, action: 'drain', args: { ...target, timeoutMs: 30_000 }, question: `Drain ${where}: no new connections, wait up to 30s for open ones?` };
    if (input === 'x') return { sourceId: b.sourceId, action: 'drain', args: { ...target, timeoutMs: 0 }, question: `Disable ${where} now (open connections are not waited for)?` };
    return { sourceId: b.sourceId, action: 'undrain', args: target, question: `Put ${where} back in rotation?` };
  }
  const s = ui.view === 'overview' || ui.view === 'service' ? ctx.service : undefined;
  if (s && (input === '+' || input === '-') && (s.kind === 'deploy' || s.replicas !== null)) {
    const current = s.desired ?? s.replicas ?? 0;
    const replicas = Math.max(0, current + (input === '+' ? 1 : -1));
    if (replicas === current) return null;
    return { sourceId: s.sourceId, action: 'scale', args: { service: s.service, replicas }, question: `Scale ${s.service} from ${current} to ${replicas} replica(s)?` };
  }
  return null;
}
