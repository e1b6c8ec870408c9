import React, { useRef } from 'react';
import { Box, Text } from 'ink';
import type { TimelineEvent } from '../../engine/top/store.js';
import { headerLine, rowCells, type Placed } from './columns.js';
import { clock, fit } from './format.js';
import { scrollOffset } from './rows.js';

/**
 * Presentational pieces of the dashboard. Each takes plain rows and a size and renders exactly
 * that many lines, so the screen never grows past the terminal. Colour only when `color` (the
 * NO_COLOR convention is decided once, in the command).
 */
export interface Theme {
  readonly color: boolean;
}

const HEALTH_COLOR: Record<string, string> = { healthy: 'green', unhealthy: 'red', starting: 'yellow', draining: 'yellow', disabled: 'magenta' };

/** A virtualized table: only the `height` visible rows are built, whatever the row count. */
export function Table<R extends { key: string }>(props: {
  placed: readonly Placed<R>[];
  rows: readonly R[];
  cursor: number;
  height: number;
  width: number;
  theme: Theme;
  /** Index of the column to colour by health. */
  healthCol?: string;
  empty?: string;
}): React.ReactElement {
  const { placed, rows, cursor, height, width, theme } = props;
  const offset = useRef(0);
  offset.current = scrollOffset(offset.current, cursor, height, rows.length);
  const visible = rows.slice(offset.current, offset.current + height);
  const lines: React.ReactElement[] = [];
  const hi = props.healthCol ? placed.findIndex((p) => p.col.id === props.healthCol) : -1;
  visible.forEach((row, i) => {
    const at = offset.current + i;
    const selected = at === cursor;
    const cells = rowCells(placed, row);
    const lead = selected ? '> ' : '  ';
    if (hi >= 0 && theme.color) {
      const before = lead + cells.slice(0, hi).map((c) => `${c} `).join('');
      const after = cells.slice(hi + 1).map((c) => ` ${c}`).join('');
      const h = cells[hi]!;
      lines.push(
        <Text key={row.key} inverse={selected} wrap="truncate">
          {before}
          <Text color={HEALTH_COLOR[h.trim()]}>{h}</Text>
          {after}
        </Text>,
      );
    } else {
      lines.push(
        <Text key={row.key} inverse={selected && theme.color} wrap="truncate">
          {fit(lead + cells.join(' '), width)}
        </Text>,
      );
    }
  });
  if (rows.length === 0) lines.push(<Text key="empty" dimColor={theme.color}>{fit(`  ${props.empty ?? 'nothing to show'}`, width)}</Text>);
  while (lines.length < height) lines.push(<Text key={`pad${lines.length}`}> </Text>);
  return (
    <Box flexDirection="column">
      <Text bold={theme.color} wrap="truncate">
        {fit(headerLine(placed), width)}
      </Text>
      {lines}
    </Box>
  );
}

export function TitleBar(props: { width: number; theme: Theme; sources: number; lost: number; services: number; backends: number; intervalMs: number; clockMs: number }): React.ReactElement {
  const left = `elastic top  ${props.sources} source${props.sources === 1 ? '' : 's'}${props.lost ? ` (${props.lost} lost)` : ''}  ${props.services} services  ${props.backends} backends`;
  const right = `every ${props.intervalMs >= 1000 ? `${props.intervalMs / 1000}s` : `${props.intervalMs}ms`}  ${clock(props.clockMs)}`;
  const gap = Math.max(1, props.width - left.length - right.length);
  return (
    <Text bold={props.theme.color} color={props.theme.color ? 'cyan' : undefined} wrap="truncate">
      {fit(left + ' '.repeat(gap) + right, props.width)}
    </Text>
  );
}

export function Tabs(props: { width: number; theme: Theme; active: string; drill?: string; sortText: string; filter: string; position: string; fleet?: boolean }): React.ReactElement {
  const tabs = [
    ['overview', '1 Overview'],
    ['backends', '2 Backends'],
    ['timeline', '3 Timeline'],
    ...(props.fleet ? [['hosts', '4 Hosts'] as const] : []),
  ] as const;
  const parts = tabs.map(([id, label]) => (props.active === id ? `[${label}]` : ` ${label} `));
  if (props.drill) parts.push(`[> ${props.drill}]`);
  const right = `${props.filter ? `filter: ${props.filter}  ` : ''}${props.sortText}${props.position ? `  ${props.position}` : ''}`;
  const left = parts.join(' ');
  return <Text wrap="truncate">{fit(`${left}${' '.repeat(Math.max(1, props.width - left.length - right.length))}${right}`, props.width)}</Text>;
}

export function eventLine(e: TimelineEvent, width: number): string {
  return fit(`${clock(e.time)} ${fit(e.type, 8)} ${fit(e.sourceId, 18)} ${e.service ? `${e.service}: ` : ''}${e.message}`, width);
}

/** The last few events under a table ("what changed, next to the rates"). */
export function EventsPane(props: { events: readonly TimelineEvent[]; height: number; width: number; theme: Theme }): React.ReactElement {
  const shown = props.events.slice(-Math.max(0, props.height - 1)).reverse();
  const lines = shown.map((e, i) => (
    <Text key={i} wrap="truncate" color={props.theme.color && /error|refus|remov|lost|fail/.test(e.type + e.message) ? 'yellow' : undefined}>
      {eventLine(e, props.width)}
    </Text>
  ));
  while (lines.length < props.height - 1) lines.push(<Text key={`pad${lines.length}`}> </Text>);
  return (
    <Box flexDirection="column">
      <Text dimColor={props.theme.color}>{`-- recent events ${'-'.repeat(props.width)}`.slice(0, props.width)}</Text>
      {lines}
    </Box>
  );
}

export function TimelineView(props: { events: readonly TimelineEvent[]; cursor: number; height: number; width: number; theme: Theme }): React.ReactElement {
  const offset = useRef(0);
  offset.current = scrollOffset(offset.current, props.cursor, props.height, props.events.length);
  const visible = props.events.slice(offset.current, offset.current + props.height);
  const lines = visible.map((e, i) => {
    const selected = offset.current + i === props.cursor;
    return (
      <Text key={i} inverse={selected && props.theme.color} wrap="truncate">
        {(selected ? '> ' : '  ') + eventLine(e, props.width - 2)}
      </Text>
    );
  });
  if (props.events.length === 0) lines.push(<Text key="empty">  no events yet</Text>);
  while (lines.length < props.height) lines.push(<Text key={`pad${lines.length}`}> </Text>);
  return (
    <Box flexDirection="column">
      <Text bold={props.theme.color}>{fit(`  TIME     TYPE     SOURCE             MESSAGE${props.events.length > props.height ? ` (${props.events.length})` : ''}`, props.width)}</Text>
      {lines}
    </Box>
  );
}

export const HELP_LINES = [
  'Keys',
  '  up/down, j/k     move            PgUp/PgDn, g/G  page, first/last',
  '  1 2 3, Tab       overview, backends, timeline',
  '  Enter            drill down into the service under the cursor',
  '  Esc              back; clear the filter',
  '  /                filter: words must all match; field:value; !word',
  '  s / r            sort by the next column / reverse the order',
  '  d                drain the backend (waits for open connections)',
  '  x                disable the backend now;  u  put it back',
  '  + / -            scale a deploy up / down by one replica',
  '  ?                this help;  q  quit',
  '  4                hosts of the fleet (with --etcd/--fleet, or a fleet host)',
  '',
  'Actions ask for confirmation (y/Enter) and go to the socket that',
  'reported the row. Rates are deltas of counters between snapshots.',
];

export function HelpView(props: { height: number; width: number }): React.ReactElement {
  const lines = HELP_LINES.slice(0, props.height).map((l, i) => (
    <Text key={i} wrap="truncate">
      {fit(l, props.width)}
    </Text>
  ));
  while (lines.length < props.height) lines.push(<Text key={`pad${lines.length}`}> </Text>);
  return <Box flexDirection="column">{lines}</Box>;
}

export function Footer(props: { width: number; theme: Theme; text: string; prompt?: boolean }): React.ReactElement {
  return (
    <Text wrap="truncate" inverse={Boolean(props.prompt) && props.theme.color} bold={Boolean(props.prompt)}>
      {fit(props.text, props.width)}
    </Text>
  );
}
