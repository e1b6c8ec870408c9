import type { Backend, BackendChange } from '../engine/model/backend.js';
import { endpoint } from '../engine/model/backend.js';
import type { DiscoverResult } from '../engine/discover.js';
import type { WatchUpdate } from '../engine/discovery/watch.js';
import { formatAge, renderTable } from './table.js';
import { printable } from '../engine/model/validate.js';

export function discoverTable(result: DiscoverResult, now = Date.now()): string {
  return renderTable(
    ['ID', 'NAME', 'SOURCE', 'ADDRESS', 'STATE', 'HEALTH', 'AGE'],
    result.backends.map((b) => [b.id, b.name, b.source, endpoint(b), b.state, b.health, formatAge(b.since, now)]),
  );
}

/** The JSON form of a backend, as documented in README "JSON output". */
export function backendJson(b: Backend): Record<string, unknown> {
  return {
    id: b.id,
    name: b.name,
    service: b.service,
    source: b.source,
    address: b.address,
    port: b.port,
    endpoint: endpoint(b),
    state: b.state,
    health: b.health,
    image: b.image ?? null,
    since: b.since,
    labels: b.labels,
  };
}

/** NDJSON lines for one watch update: one object per change. */
export function watchJsonLines(update: WatchUpdate, time = new Date().toISOString()): string[] {
  return update.changes.map((c: BackendChange) =>
    JSON.stringify({ type: c.type, time, reason: update.reason, ...(c.fields ? { fields: c.fields } : {}), backend: backendJson(c.backend) }),
  );
}

export function watchTextLines(update: WatchUpdate, time = new Date()): string[] {
  const hhmmss = time.toISOString().slice(11, 19);
  const sign = { added: '+', removed: '-', changed: '~' } as const;
  return update.changes.map((c) => {
    const b = c.backend;
    const extra = c.fields ? ` (${c.fields.join(',')})` : '';
    return `${hhmmss} ${sign[c.type]} ${c.type.padEnd(7)} ${b.id}  ${printable(b.name, 60)}  ${endpoint(b)}  ${b.health}${extra}`;
  });
}
