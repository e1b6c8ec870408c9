import type { Change } from '../engine/fleet/diff.js';
import type { FleetStatus } from '../engine/fleet/status.js';
import type { HistoryEntry, PushResult } from '../engine/fleet/versions.js';
import { printable } from '../engine/model/validate.js';
import { formatAge, renderTable } from './table.js';

/** Plain text for the `cluster` commands (stdout); --json prints the results as they are. */
export function changesText(changes: readonly Change[]): string {
  if (changes.length === 0) return '  (no change in meaning)\n';
  return changes.map((c) => (c.op === '~' ? `  ~ ${c.path}: ${c.from} -> ${c.to}\n` : c.op === '+' ? `  + ${c.path}: ${c.to}\n` : `  - ${c.path}\n`)).join('');
}

export function pushText(r: PushResult): string {
  const warn = r.warnings.map((w) => `warning: ${w}\n`).join('');
  if (r.unchanged) return `${warn}fleet ${r.fleet}: unchanged (version ${r.previous} has the same text); nothing committed\n`;
  const head = r.committed ? `fleet ${r.fleet}: version ${r.version} committed (was ${r.previous ?? 'none'})` : `fleet ${r.fleet}: would commit version ${r.version} (dry run; was ${r.previous ?? 'none'})`;
  const hosts = r.hosts.length ? ` hosts with their own part: ${r.hosts.join(', ')}` : '';
  return `${warn}${head}, ${r.hash}.${hosts}\n${changesText(r.changes)}`;
}

export function historyText(h: { fleet: string; versions: readonly HistoryEntry[] }): string {
  if (h.versions.length === 0) return `fleet ${h.fleet}: no version yet\n`;
  return renderTable(
    ['VERSION', 'HASH', 'AGE', 'BY', 'FILE', 'NOTE'],
    h.versions.map((v) => [`${v.version}${v.current ? '*' : ''}`, v.hash, formatAge(v.pushedAt), v.pushedBy, v.file, v.rollbackOf !== null ? `rollback to ${v.rollbackOf}` : '']),
  );
}

export function diffText(d: { from: number; to: number; changes: readonly Change[] }): string {
  return `version ${d.from} -> ${d.to}\n${changesText(d.changes)}`;
}

export function statusText(s: FleetStatus): string {
  const head = s.version === null ? `fleet ${s.fleet}: no version in the store (never pushed, or the store was wiped); hosts keep serving what they applied\n` : `fleet ${s.fleet}: version ${s.version} (${s.hash}), leader ${s.leader ?? 'none'}, ${s.converged ? 'converged' : 'NOT converged'}\n`;
  if (s.hosts.length === 0) return `${head}no host has registered\n`;
  const rows = s.hosts.map((h) => [
    h.name,
    h.alive ? 'alive' : 'STALE',
    h.appliedVersion ?? '-',
    h.converged ? 'yes' : 'no',
    h.digest ?? '-',
    Object.entries(h.services)
      .map(([n, v]) => `${n} ${v.healthy}/${v.backends}${v.refused ? ' refused' : ''}`)
      .join(', ') || '-',
    [h.refusal ? `v${h.refusal.version} refused: ${printable(h.refusal.message, 120)}` : '', h.elbRefusal ? `ELB listener not served: ${printable(h.elbRefusal.message, 120)}` : ''].filter(Boolean).join('; '),
  ]);
  return head + renderTable(['HOST', 'STATE', 'APPLIED', 'CONVERGED', 'DIGEST', 'SERVICES (healthy/backends)', 'LAST REFUSAL'], rows);
}
