import type { CheckResult, OnceResult } from '../engine/run.js';

/** Plain-text renderings of `elastic run --check` and `--once` results (stdout). */
export function checkText(r: CheckResult): string {
  const c = r.config as { file: string; hash: string; sources: Record<string, string>; services: Record<string, string[]>; deploys?: string[]; api: string | null; metrics: { prometheus: string | null; statsd: string | null } };
  const lines = [`${c.file}: ok (config ${c.hash})`];
  for (const [name, kind] of Object.entries(c.sources)) lines.push(`  source  ${name}  ${kind}`);
  for (const [name, served] of Object.entries(c.services)) lines.push(`  service ${name}  ${served.join(', ')}`);
  for (const name of c.deploys ?? []) lines.push(`  deploy  ${name}`);
  if (c.metrics.prometheus) lines.push(`  metrics http://${c.metrics.prometheus}`);
  if (c.metrics.statsd) lines.push(`  statsd  ${c.metrics.statsd}`);
  if (c.api) lines.push(`  api     http://${c.api}`);
  return `${lines.join('\n')}\n`;
}

export function onceText(r: OnceResult): string {
  return `${Object.entries(r.appliers).map(([a, what]) => `${a}: ${what}`).join('\n')}\n`;
}
