import React, { useRef } from 'react';
import { Box, Text } from 'ink';
import type { TopFleet, TopHost } from '../../engine/top/fleet.js';
import type { Theme } from './components.js';
import { COLS, fleetTitle, hostCells, hostTail } from './hosts-text.js';
import { fit } from './format.js';
import { scrollOffset } from './rows.js';

/**
 * The Hosts view (a fleet: `top --etcd --fleet`, or the daemon watched is a fleet host): one
 * row per host with what `cluster status` says: alive or stale, applied version, converged,
 * leader, the last refusal, and backends per service (healthy/all) as that host sees them.
 */
export function HostsView(props: { fleet: TopFleet | null; hosts: readonly TopHost[]; cursor: number; height: number; width: number; theme: Theme }): React.ReactElement {
  const { fleet, hosts, cursor, height, width, theme } = props;
  const offset = useRef(0);
  const tableH = Math.max(1, height - 2);
  offset.current = scrollOffset(offset.current, cursor, tableH, hosts.length);
  const row = (cells: readonly string[], tail: string) => `${COLS.map((c, i) => fit(cells[i] ?? '', c.width)).join(' ')} ${tail}`;
  const lines: React.ReactElement[] = [];
  if (!fleet) {
    lines.push(<Text key="none">{fit('not a fleet: give --etcd URL --fleet NAME, or run top next to a fleet host (elastic run --etcd --fleet --host)', width)}</Text>);
  } else {
    lines.push(
      <Text key="title" wrap="truncate" color={theme.color && (!fleet.converged || fleet.error) ? 'yellow' : undefined}>
        {fit(fleetTitle(fleet), width)}
      </Text>,
    );
    lines.push(
      <Text key="head" bold wrap="truncate">
        {fit(`  ${row(COLS.map((c) => c.title), 'BACKENDS (healthy/all)  LAST REFUSAL')}`, width)}
      </Text>,
    );
    hosts.slice(offset.current, offset.current + tableH).forEach((h, i) => {
      const selected = offset.current + i === cursor;
      const bad = !h.alive || !h.converged || h.refusal;
      lines.push(
        <Text key={h.name} inverse={selected} wrap="truncate" color={theme.color && bad ? 'yellow' : undefined}>
          {fit(`${selected ? '> ' : '  '}${row(hostCells(h), hostTail(h))}`, width)}
        </Text>,
      );
    });
    if (hosts.length === 0) lines.push(<Text key="empty">{fit('  no host matches', width)}</Text>);
  }
  while (lines.length < height) lines.push(<Text key={`pad${lines.length}`}> </Text>);
  return <Box flexDirection="column">{lines.slice(0, height)}</Box>;
}
