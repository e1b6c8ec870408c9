import type { TopFleet, TopHost } from '../../engine/top/fleet.js';

/** The Hosts view's cells, shared by the dashboard (hosts.tsx) and plain output (plain.ts). */
export const COLS = [
  { title: 'HOST', width: 16 },
  { title: 'STATE', width: 6 },
  { title: 'APPLIED', width: 8 },
  { title: 'CONVERGED', width: 10 },
  { title: 'LEADER', width: 7 },
] as const;

export function hostCells(h: TopHost): string[] {
  return [h.name, h.alive ? 'alive' : 'stale', h.appliedVersion === null ? '-' : `v${h.appliedVersion}`, h.converged ? 'yes' : 'no', h.leader ? 'leader' : ''];
}

/** What follows the fixed columns: backends per service, then the last refusal. */
export function hostTail(h: TopHost): string {
  const svc = h.services.map((s) => `${s.service} ${s.healthy}/${s.backends}`).join('  ');
  return `${svc || '-'}${h.refusal ? `  refused ${h.refusal}` : ''}`;
}

export function fleetTitle(f: TopFleet): string {
  return `fleet ${f.fleet}  version ${f.version ?? '-'}  leader ${f.leader ?? 'none'}  ${f.converged ? 'converged' : 'NOT converged'}  (from ${f.from})${f.error ? `  store: ${f.error}` : ''}`;
}

