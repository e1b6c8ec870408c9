import type { RouteView, RunningEdge } from '../engine/proxy.js';
import { renderTable } from './table.js';

/** Plain renderers for `proxy edge` / `proxy node` and for `top`'s edge rows. */
export function listeningJson(edge: RunningEdge): Record<string, unknown> {
  return { type: 'listening', clientPorts: edge.clientPorts, nodePort: edge.nodePort, status: edge.status?.path ?? null, pid: process.pid };
}

export function listeningText(edge: RunningEdge): string {
  return `edge listening: clients on port ${edge.clientPorts.join(', ')}, nodes on port ${edge.nodePort}${edge.status ? `, status ${edge.status.path}` : ''}\n`;
}

/** One row per route: what `top` shows for an edge. */
export function routesTable(routes: Record<string, RouteView>): string {
  const rows = Object.entries(routes).map(([name, r]) => [
    name,
    r.path,
    r.queued + r.warmQueued,
    r.active,
    r.capacity,
    r.idle,
    r.nodes,
    r.pending,
    r.starts,
    r.timeouts,
    `${r.waitP50Ms}/${r.waitP99Ms}`,
  ]);
  return renderTable(['ROUTE', 'PATH', 'QUEUED', 'ACTIVE', 'CAPACITY', 'IDLE', 'NODES', 'STARTING', 'STARTS', 'TIMEOUTS', 'WAIT P50/P99 MS'], rows);
}
