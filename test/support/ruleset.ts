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

/** A state directory's kernel objects (src/engine/dataplane/namespace.ts). */
export interface OwnNamespace {
  readonly nftTable: string;
  readonly chainPrefix: string;
}

/**
 * With `mine`, the objects of other elastic namespaces (other state directories: other engineers'
 * test runs on this host) are left out, so their activity does not show as a change of ours.
 */
export async function snapshotRuleset(mine?: OwnNamespace): Promise<RulesetSnapshot> {
  const [nat, filter, nft] = await Promise.all([out('iptables-save', ['-t', 'nat']), out('iptables-save', ['-t', 'filter']), out('nft', ['list', 'ruleset'])]);
  const ipt = (t: string) => (mine ? t.split('\n').filter((l) => !otherChain(l, mine) && !dockerLine(l)).join('\n') : t);
  return { nat: normalizeRuleset(ipt(nat)), filter: normalizeRuleset(ipt(filter)), nft: normalizeRuleset(mine ? dropOtherTables(nft, mine) : nft) };
}

/**
 * Docker's own rules change whenever anyone on the host makes a network (a `br-<id>` bridge: its
 * MASQUERADE, FORWARD and isolation rules) or publishes a port (DNAT in `DOCKER`, the hairpin
 * MASQUERADE of `-s a/32 -d a/32`): another engineer's test, not ours, so they are left out too.
 * (Its hooks in the built-in chains, fixed since dockerd started, stay compared.)
 */
function dockerLine(line: string): boolean {
  return /\bbr-[0-9a-f]{12}\b/.test(line) || /^(:|-A )DOCKER/.test(line) || dockerHairpin(line);
}

const dockerHairpin = (line: string) =>
  /^-A POSTROUTING -s (\S+)\/32 -d \1\/32 .*-j MASQUERADE$/.test(line) || /^\s*ip saddr (\S+) ip daddr \1 .*masquerade$/.test(line);

function otherChain(line: string, mine: OwnNamespace): boolean {
  return [...line.matchAll(/ELASTIC-[0-9a-f]{6}-/g)].some((m) => m[0] !== mine.chainPrefix);
}

/**
 * nft's view holds other namespaces twice: their own tables (`ip elastic_<h>`) and, through
 * iptables-nft, their chains and hook jumps in `ip filter`/`ip nat` (`chain ELASTIC-<h>-FORWARD`).
 */
export function dropOtherTables(text: string, mine: OwnNamespace): string {
  const out: string[] = [];
  let skipping: string | null = null; // the line that closes the skipped block
  for (const line of text.split('\n')) {
    if (skipping === null) {
      const table = /^table ip6? (elastic_[0-9a-f]{6}) \{/.exec(line);
      const chain = /^(\s*)chain (ELASTIC-[0-9a-f]{6}-)\S* \{/.exec(line);
      const docker = /^(\s*)chain DOCKER\S* \{/.exec(line);
      if (table && table[1] !== mine.nftTable) skipping = '}';
      else if (chain && chain[2] !== mine.chainPrefix) skipping = `${chain[1]}}`;
      else if (docker) skipping = `${docker[1]}}`;
      else if (!otherChain(line, mine) && !dockerLine(line)) out.push(line);
      continue;
    }
    if (line === skipping) skipping = null;
  }
  // A skipped chain leaves the blank line that separated it from the next: drop doubled blanks,
  // and the blank left after a block's opening or before its closing brace when the skipped chain
  // was its first or last (another namespace's chain beside ours would otherwise change our snapshot).
  return out.join('\n').replace(/\n\s*\n(\s*\n)+/g, '\n\n').replace(/\n\s*\n(\s*\})/g, '\n$1').replace(/\{\n\s*\n/g, '{\n');
}

/** Lines of the current ruleset that mention elastic's own objects (should be none after cleanup). */
export async function elasticTraces(mine?: OwnNamespace): Promise<string[]> {
  const s = await snapshotRuleset(mine);
  const ours = mine ? (l: string) => l.includes(mine.chainPrefix) || l.includes(`table ip ${mine.nftTable} `) || l.includes(`table ip6 ${mine.nftTable} `) : (l: string) => /ELASTIC|elastic/.test(l);
  return [s.nat, s.filter, s.nft].flatMap((t) => t.split('\n')).filter(ours);
}
