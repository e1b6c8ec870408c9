import type { TopState } from '../../engine/top/store.js';
import { renderTable } from '../table.js';
import { fleetTitle, hostCells, hostTail } from './hosts-text.js';
import { clock, formatBytesRate, formatCount, formatMs, formatRate } from './format.js';

/** `top` for pipes and `--once`: the same rows as the dashboard, as plain aligned tables. */
export function topText(state: TopState, opts: { events?: number } = {}): string {
  const out: string[] = [];
  if (state.notice) out.push(`note: ${state.notice}\n`);
  if (state.sources.length === 0) out.push('no sources\n');
  else {
    out.push(
      renderTable(
        ['SOURCE', 'KIND', 'PID', 'STATUS'],
        state.sources.map((s) => [s.id, s.kind, s.pid ?? '-', s.status === 'live' ? 'live' : `lost: ${s.error ?? ''}`]),
      ),
    );
  }
  if (state.services.length > 0) {
    out.push(
      renderTable(
        ['SERVICE', 'KIND', 'SOURCE', 'BACKENDS', 'HEALTHY', 'RATE/S', 'UNIT', 'BYTES/S', 'CONNS', 'QUEUED', 'CAPACITY', 'WAIT P99'],
        state.services.map((s) => [
          s.service,
          s.kind,
          s.sourceId,
          s.backends,
          s.healthy,
          formatRate(s.rate),
          s.rateUnit || '-',
          formatBytesRate(s.bytesRate),
          formatCount(s.connections),
          formatCount(s.queued),
          formatCount(s.capacity),
          formatMs(s.waitP99Ms),
        ]),
      ),
    );
  }
  if (state.backends.length > 0) {
    out.push(
      renderTable(
        ['ADDRESS', 'SERVICE', 'SOURCE', 'VIA', 'HEALTH', 'STATE', 'PKT/S', 'BYTES/S', 'REQ/S', 'SESSIONS', 'QUEUED', 'NAME'],
        state.backends.map((b) => [
          b.endpoint,
          b.service,
          b.origin,
          b.sourceId,
          b.health,
          b.state,
          formatRate(b.pktRate),
          formatBytesRate(b.bytesRate),
          formatRate(b.hitRate),
          formatCount(b.sessions),
          formatCount(b.queued),
          b.name,
        ]),
      ),
    );
  }
  if (state.fleet) {
    out.push(`${fleetTitle(state.fleet)}\n`);
    out.push(renderTable(['HOST', 'STATE', 'APPLIED', 'CONVERGED', 'LEADER', 'BACKENDS (healthy/all)  LAST REFUSAL'], state.fleet.hosts.map((h) => [...hostCells(h), hostTail(h)])));
  }
  const events = state.timeline.slice(-(opts.events ?? 10));
  if (events.length > 0) {
    out.push(renderTable(['TIME', 'TYPE', 'SOURCE', 'MESSAGE'], events.map((e) => [clock(e.time), e.type, e.sourceId, `${e.service ? `${e.service}: ` : ''}${e.message}`])));
  }
  return out.join('\n');
}
