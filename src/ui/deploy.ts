import type { DeployResult } from '../engine/deploy.js';
import type { Ec2DeployResult } from '../engine/deploy/ec2.js';
import type { RolloutEvent } from '../engine/deploy/rollout.js';
import type { ServiceView } from '../engine/deploy/view.js';
import { printable } from '../engine/model/validate.js';
import { renderTable } from './table.js';

/**
 * Plain renderers for `elastic deploy`: one stderr line per progress event (pipes, CI, logs), and
 * the result and status tables on stdout. The Ink live view is in deploy-progress.tsx.
 */
const shortRev = (r: string) => printable(r, 21);

export function progressLine(e: RolloutEvent): string | null {
  switch (e.type) {
    case 'phase':
      return `deploy: ${e.phase}: ${printable(e.message, 300)}`;
    case 'replica':
      if (e.phase === 'existing') return null;
      return `  ${printable(e.name, 60)} #${e.index} ${shortRev(e.revision)} ${e.phase}${e.detail ? ` (${printable(e.detail, 160)})` : ''}`;
    case 'drain': {
      const parts = e.outcomes.map((o) => `${o.socket}: ${o.outcome}${o.detail ? ` (${printable(o.detail, 120)})` : ''}`);
      return parts.length ? `  drain ${e.id}: ${parts.join(', ')}` : `  drain ${e.id}: no load balancer of elastic runs here`;
    }
  }
}

/** The plain progress display: one stderr line per event worth a line. */
export function writeProgress(e: RolloutEvent): void {
  const line = progressLine(e);
  if (line) process.stderr.write(`${line}\n`);
}

export function resultText(r: DeployResult): string {
  const lines: string[] = [];
  if (r.plan) {
    lines.push(`plan for ${r.service} -> ${r.desired} replica(s) of ${r.revision}${r.plan.length === 0 ? ': nothing to do' : ''}`);
    r.plan.forEach((s, i) => {
      lines.push(`  step ${i + 1}: ${s.note}`);
      for (const idx of s.create) lines.push(`    create replica #${idx} (${r.revision})`);
      for (const x of s.remove) lines.push(`    drain, stop and remove ${x.name} (${x.revision}, ${x.reason})`);
    });
    return `${lines.join('\n')}\n`;
  }
  lines.push(`${r.service}: ${r.phase}, ${r.desired} replica(s) of ${r.revision}${r.previous ? ` (previous ${r.previous})` : ''}; created ${r.created}, removed ${r.removed}, failed ${r.failed}`);
  // A steady service's message only restates the line above (and the last progress line).
  if (r.message && r.phase !== 'steady') lines.push(printable(r.message, 300));
  return `${lines.join('\n')}\n${replicaTable(r.replicas)}`;
}

function replicaTable(replicas: ServiceView['replicas']): string {
  return renderTable(
    ['#', 'NAME', 'ID', 'REVISION', 'STATE', 'HEALTH', 'ADDRESS'],
    replicas.map((x) => [x.index, x.name, x.id, x.revision, x.phase, x.health ?? '-', x.address ? `${x.address}${x.port ? `:${x.port}` : ''}` : '-']),
  );
}

export function statusText(services: readonly ServiceView[]): string {
  if (services.length === 0) return 'no deployed service\n';
  return services
    .map((s) => {
      const head = `${s.service}  ${s.image}  ${s.phase}  ready ${s.ready}/${s.desired}  revision ${s.revision}${s.previous ? `  previous ${s.previous}` : ''}`;
      const auto = s.autoscale
        ? `\nautoscale ${s.autoscale.min}..${s.autoscale.max} on ${s.autoscale.metric} ${s.autoscale.target}${s.autoscale.last ? `: ${s.autoscale.last.from} -> ${s.autoscale.last.to}, ${printable(s.autoscale.last.reason, 200)}` : ''}`
        : '';
      const msg = s.message ? `\n${printable(s.message, 300)}` : '';
      return `${head}${msg}${auto}\n${replicaTable(s.replicas)}`;
    })
    .join('\n');
}

export function ec2Text(r: Ec2DeployResult): string {
  const head = `${r.service}: ${r.instances.length} instance(s) of ${r.revision}; launched ${r.launched.length}, terminated ${r.terminated.length}\n`;
  return head + renderTable(['INSTANCE', 'STATE', 'REVISION', 'ADDRESS', 'LAUNCHED'], r.instances.map((i) => [i.instanceId, i.state, i.revision, i.address ?? '-', i.launched]));
}
