import React, { useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { Box, Text, useApp, useInput, useStdout } from 'ink';
import type { TopState, TopStore } from '../../engine/top/store.js';
import { BACKEND_COLUMNS, SERVICE_COLUMNS, layout } from './columns.js';
import { EventsPane, Footer, HelpView, Table, Tabs, TimelineView, TitleBar, type Theme } from './components.js';
import { DrillView } from './drill.js';
import { HostsView } from './hosts.js';
import { fit } from './format.js';
import { initialUi, reduceKey, type KeyInfo, type PendingAction, type UiState, type View } from './keys.js';
import { rowCount, viewRows } from './rows.js';

/**
 * `elastic top`, interactive: one store (engine/top/store.ts), one subscribing hook, and the
 * presentational components. The frame is always exactly `rows - 1` lines (Ink redraws the whole
 * screen when a frame reaches the terminal's height), and follows resizes.
 */
export interface TopAppProps {
  store: TopStore;
  intervalMs: number;
  color: boolean;
  /** Fixed size (tests); by default the terminal's, following resizes. */
  width?: number;
  height?: number;
  initial?: { view?: View; filter?: string; sort?: string; reverse?: boolean };
  /** Runs a confirmed action; resolves to a line for the footer. */
  onAction?: (pending: PendingAction) => Promise<string>;
}

export function useTopState(store: TopStore): TopState {
  return useSyncExternalStore(
    (fn) => store.subscribe(fn),
    () => store.state(),
  );
}

export function useTerminalSize(fixed: { width?: number; height?: number }): { width: number; height: number } {
  const { stdout } = useStdout();
  const read = () => ({ width: fixed.width ?? stdout.columns ?? 80, height: fixed.height ?? Math.max(8, (stdout.rows ?? 24) - 1) });
  const [size, setSize] = useState(read);
  useEffect(() => {
    if (fixed.width !== undefined && fixed.height !== undefined) return;
    const onResize = () => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout, fixed.width, fixed.height]);
  return fixed.width !== undefined && fixed.height !== undefined ? { width: fixed.width, height: fixed.height } : size;
}

const HINTS: Record<View, string> = {
  overview: 'q quit  ? help  / filter  s sort  r reverse  Enter drill  +/- scale',
  backends: 'q quit  ? help  / filter  s sort  r reverse  Enter drill  d drain  x disable',
  service: 'Esc back  / filter  s sort  d drain  x disable  u undrain  +/- scale  ? help',
  timeline: 'q quit  ? help  / filter  j/k scroll  1 overview  2 backends',
  hosts: 'q quit  ? help  / filter  j/k scroll  1 overview  3 timeline',
};

export function TopApp(props: TopAppProps): React.ReactElement {
  const state = useTopState(props.store);
  const { width, height } = useTerminalSize({ width: props.width, height: props.height });
  const [ui, setUi] = useState<UiState>(() => initialUi(props.initial));
  const [message, setMessage] = useState<string | null>(null);
  const { exit } = useApp();
  const theme: Theme = useMemo(() => ({ color: props.color }), [props.color]);
  const rows = useMemo(() => viewRows(state, ui), [state, ui.view, ui.filter, ui.sort, ui.drill]);
  const uiRef = useRef(ui);
  uiRef.current = ui;

  const notice = state.notice && (ui.view === 'overview' || ui.view === 'backends') ? 1 : 0;
  const body = Math.max(3, height - 3);
  const eventsH = ui.view === 'overview' || ui.view === 'backends' ? Math.min(4, Math.max(0, body - 6)) : 0;
  const tableH = Math.max(1, body - eventsH - notice - 1);
  const count = rowCount(rows, ui);
  const cursor = Math.min(ui.cursor[ui.view], Math.max(0, count - 1));

  useInput((input, key) => {
    // Keys typed faster than a frame (or sent by tmux) arrive as one chunk: take them one by one.
    if (input.length > 1 && !key.ctrl && !key.meta && !/^\x1b/.test(input)) {
      for (const ch of input) onKey(ch === '\r' || ch === '\n' ? '' : ch === '\x7f' ? '' : ch, { return: ch === '\r' || ch === '\n', backspace: ch === '\x7f' });
      return;
    }
    onKey(input, key);
  });

  // Ink may call an input handler from an earlier render: read the latest rows through a ref.
  const latest = useRef({ rows, count, tableH, fleet: state.fleet !== null });
  latest.current = { rows, count, tableH, fleet: state.fleet !== null };

  function onKey(input: string, key: KeyInfo): void {
    const { rows, count, tableH } = latest.current;
    const cur = uiRef.current;
    const at = Math.min(cur.cursor[cur.view], Math.max(0, count - 1));
    const service = cur.view === 'overview' ? rows.services[at] : cur.view === 'service' ? rows.drill : undefined;
    const backend = cur.view === 'backends' ? rows.backends[at] : cur.view === 'service' ? rows.drillBackends[at] : undefined;
    const { ui: next, effect } = reduceKey({ ...cur, cursor: { ...cur.cursor, [cur.view]: at } }, input, key, { rows: count, pageSize: tableH, service, backend, fleet: latest.current.fleet });
    if (next !== cur) {
      uiRef.current = next;
      setUi(next);
    }
    if (next.confirm || next.editing) setMessage(null);
    if (effect?.type === 'quit') exit();
    if (effect?.type === 'action' && props.onAction) {
      setMessage(`${effect.pending.action} sent to ${effect.pending.sourceId}...`);
      props.onAction(effect.pending).then(setMessage, (err: Error) => setMessage(`${effect.pending.action} failed: ${err.message}`));
    } else if (effect?.type === 'action') setMessage('actions are not available here');
  }

  const lost = state.sources.filter((s) => s.status === 'lost').length;
  const sortView = ui.view === 'timeline' || ui.view === 'hosts' ? null : ui.view;
  const sortText = sortView ? `sort ${ui.sort[sortView].col} ${ui.sort[sortView].reverse ? 'desc' : 'asc'}` : '';
  const footer = ui.confirm
    ? `${fit(ui.confirm.question, Math.max(10, width - 6)).trimEnd()} [y/N]`
    : ui.editing
      ? `/${ui.filter}_   (Enter keep, Esc clear)`
      : (message ?? HINTS[ui.view]);

  let main: React.ReactElement;
  if (ui.help) main = <HelpView height={body} width={width} />;
  else if (ui.view === 'hosts') main = <HostsView fleet={state.fleet} hosts={rows.hosts} cursor={cursor} height={body} width={width} theme={theme} />;
  else if (ui.view === 'timeline') main = <TimelineView events={rows.timeline} cursor={cursor} height={body - 1} width={width} theme={theme} />;
  else if (ui.view === 'service') main = <DrillView service={rows.drill} backends={rows.drillBackends} cursor={cursor} height={body} width={width} theme={theme} history={(k, m, n) => props.store.history(k, m, n, state.now)} />;
  else {
    const table =
      ui.view === 'overview' ? (
        <Table placed={layout(SERVICE_COLUMNS, width)} rows={rows.services} cursor={cursor} height={tableH} width={width} theme={theme} empty={state.sources.length ? 'no service matches' : 'waiting for sources...'} />
      ) : (
        <Table placed={layout(BACKEND_COLUMNS, width)} rows={rows.backends} cursor={cursor} height={tableH} width={width} theme={theme} healthCol="health" empty="no backend matches" />
      );
    main = (
      <Box flexDirection="column">
        {notice ? (
          <Text color={theme.color ? 'yellow' : undefined} wrap="truncate">
            {fit(state.notice ?? '', width)}
          </Text>
        ) : null}
        {table}
        {eventsH > 0 ? <EventsPane events={state.timeline} height={eventsH} width={width} theme={theme} /> : null}
      </Box>
    );
  }
  return (
    <Box flexDirection="column" width={width}>
      <TitleBar width={width} theme={theme} sources={state.sources.length} lost={lost} services={state.services.length} backends={state.backends.length} intervalMs={props.intervalMs} clockMs={state.now} />
      <Tabs width={width} theme={theme} fleet={state.fleet !== null || ui.view === 'hosts'} active={ui.view} drill={ui.view === 'service' ? rows.drill?.service ?? 'gone' : undefined} sortText={sortText} filter={ui.editing ? '' : ui.filter} position={count > 0 ? `${cursor + 1}/${count}` : ''} />
      {main}
      <Footer width={width} theme={theme} text={footer} prompt={Boolean(ui.confirm)} />
    </Box>
  );
}
