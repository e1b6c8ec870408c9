import { execa } from 'execa';

/**
 * The host's firewall as text, for "after the test it is what it was before" assertions:
 * `iptables-save -t nat`, `-t filter` and `nft list ruleset`, with counters and timestamps
 * blanked (they change with any traffic, ours or not).
 */
export interface RulesetSnapshot {
  nat: string;
  filter: string;
  nft: string;
}

async function out(cmd: string, args: string[]): Promise<string> {
  const r = await execa(cmd, args, { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

export function normalizeRuleset(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]').replace(/packets \d+ bytes \d+/g, 'packets 0 bytes 0'))
    .join('\n');
}

export async function snapshotRuleset(): Promise<RulesetSnapshot> {
  const [nat, filter, nft] = await Promise.all([out('iptables-save', ['-t', 'nat']), out('iptables-save', ['-t', 'filter']), out('nft', ['list', 'ruleset'])]);
  return { nat: normalizeRuleset(nat), filter: normalizeRuleset(filter), nft: normalizeRuleset(nft) };
}

/** Lines of the current ruleset that mention elastic's own objects (should be none after cleanup). */
export async function elasticTraces(): Promise<string[]> {
  const s = await snapshotRuleset();
  return [s.nat, s.filter, s.nft].flatMap((t) => t.split('\n')).filter((l) => /ELASTIC|elastic/.test(l));
}
