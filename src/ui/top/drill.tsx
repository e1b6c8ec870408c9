import React from 'react';
import { Box, Text } from 'ink';
import type { BackendRow, ServiceRow } from '../../engine/top/store.js';
import { sparkline } from '../../engine/top/series.js';
import { BACKEND_COLUMNS, layout, type Column } from './columns.js';
import { Table, type Theme } from './components.js';
import { fit, formatBytesRate, formatCount, formatMs, formatRate } from './format.js';

/**
 * The drill-down of one service: its facts, sparklines of its rate, bytes, queue and
 * connections over the last minutes, and its backends with a trend per row.
 */
export type HistoryFn = (rowKey: string, metric: string, count: number) => number[];

export const SPARK_SECONDS = 300;

function factsLine(s: ServiceRow): string {
  const parts = [`${s.kind} ${s.role}`, `source ${s.sourceId}`];
  if (s.capacity !== null) parts.push(`capacity ${s.capacity}`);
  if (s.nodes !== null) parts.push(`nodes ${s.nodes}`);
  if (s.replicas !== null) parts.push(`replicas ${s.replicas}${s.desired !== null ? `/${s.desired}` : ''}`);
  if (s.waitP50Ms !== null || s.waitP99Ms !== null) parts.push(`wait p50 ${formatMs(s.waitP50Ms)} p99 ${formatMs(s.waitP99Ms)}`);
  if (s.timeouts !== null) parts.push(`timeouts ${s.timeouts}`);
  for (const [k, v] of Object.entries(s.detail)) parts.push(`${k} ${v}`);
  return parts.join('  ');
}

/** Cut a long facts line into at most `lines` lines at word boundaries. */
export function wrapFacts(text: string, width: number, lines: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const part of text.split('  ')) {
    const next = cur ? `${cur}  ${part}` : part;
    if (next.length > width && cur) {
      out.push(cur);
      cur = part;
    } else cur = next;
  }
  if (cur) out.push(cur);
  return out.slice(0, lines).map((l) => fit(l, width));
}

function trendColumn(history: HistoryFn, metric: string): Column<BackendRow> {
  return {
    id: 'trend',
    title: 'LAST 60s',
    width: 10,
    priority: 5,
    text: (r) => sparkline(history(r.key, metric, 60), 10, asciiOnly()),
    sort: (r) => (metric === 'hits' ? r.hitRate : r.pktRate),
  };
}

/** Block elements need a UTF-8 terminal; LANG=C gets ASCII bars. */
export function asciiOnly(env: NodeJS.ProcessEnv = process.env): boolean {
  const lang = env.LC_ALL || env.LC_CTYPE || env.LANG || '';
  return env.ELASTIC_ASCII === '1' || (lang !== '' && !/utf-?8/i.test(lang));
}

export function DrillView(props: {
  service: ServiceRow | undefined;
  backends: readonly BackendRow[];
  cursor: number;
  height: number;
  width: number;
  theme: Theme;
  history: HistoryFn;
}): React.ReactElement {
  const { service: s, width, theme } = props;
  if (!s) {
    return (
      <Box flexDirection="column" height={props.height}>
        <Text>{fit('  this service is gone (its source stopped or removed it); Esc to go back', width)}</Text>
      </Box>
    );
  }
  const facts = wrapFacts(factsLine(s), width, 2);
  const metric = s.rateUnit === 'pkt/s' ? 'packets' : 'hits';
  const label = 8;
  const valueW = 8;
  const sparkW = Math.max(10, width - label - valueW - 2);
  const ascii = asciiOnly();
  const spark = (name: string, metricName: string, value: string) =>
    `${fit(name, label)}${fit(value, valueW, 'right')}  ${sparkline(props.history(s.key, metricName, SPARK_SECONDS), sparkW, ascii)}`;
  const sparks = [
    spark(s.rateUnit || 'rate', metric, formatRate(s.rate)),
    spark('bytes/s', 'bytes', formatBytesRate(s.bytesRate)),
    spark('queued', 'queued', formatCount(s.queued)),
    spark('conns', 'connections', formatCount(s.connections)),
  ];
  const tableHeight = Math.max(1, props.height - facts.length - sparks.length - 2);
  const placed = layout([...BACKEND_COLUMNS.filter((c) => c.id !== 'service'), trendColumn(props.history, metric)], width);
  return (
    <Box flexDirection="column">
      {facts.map((l, i) => (
        <Text key={`f${i}`} wrap="truncate">
          {l}
        </Text>
      ))}
      <Text dimColor={theme.color}>{`-- last ${SPARK_SECONDS / 60} minutes ${'-'.repeat(width)}`.slice(0, width)}</Text>
      {sparks.map((l, i) => (
        <Text key={`s${i}`} color={theme.color ? 'cyan' : undefined} wrap="truncate">
          {fit(l, width)}
        </Text>
      ))}
      <Table placed={placed} rows={props.backends} cursor={props.cursor} height={tableHeight} width={width} theme={theme} healthCol="health" empty="no backends" />
    </Box>
  );
}
