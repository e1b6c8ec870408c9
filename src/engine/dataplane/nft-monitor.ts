import { execa } from 'execa';
import type { ToolEnv } from './exec.js';
import { ownsChain, type Namespace } from './namespace.js';

/**
 * Drift detection for `map-image --watch` without reading the kernel (issue 18). A full read of
 * our nft table lists every element of a 32,749-slot Maglev map (0.3-1.1 s of nft time); doing it
 * at every 30 s resync was the cost of `--spread hash` at rest. Instead one `nft monitor` child
 * reports every change to the ruleset, each batch followed by `# new generation N by process PID`:
 * a batch from a process other than our own nft session that touches our objects (our table, one
 * of our namespace's `ELASTIC-` iptables chains, or a rule removed from a built-in chain that holds our hook jumps) is a
 * suspected drift, and the watcher resyncs with a full read at once. The periodic resync reads the
 * kernel only when drift was suspected, the monitor is not running, or every FULL_READ_EVERY-th
 * time (a backstop for events lost to a netlink overrun).
 */
export const FULL_READ_EVERY = 10;

/** The built-in chains our hook jumps live in: a rule removed there may be ours. */
const HOOK_CHAINS = /^(delete|flush) (rule|chain) ip6? (nat|filter) (PREROUTING|OUTPUT|POSTROUTING|FORWARD|DOCKER-USER)\b/;

/**
 * One `nft monitor` line touches our namespace's objects. Another namespace's `ELASTIC-<h>-`
 * chains are not ours: counting them made every watcher on a host with several state directories
 * (test runs) re-read the kernel at each change of any of them (up to a second of nft each).
 */
export function touchesOurs(line: string, ns: Namespace): boolean {
  const m = /^(?:add|delete|flush|replace|insert|update|destroy) (?:table|chain|rule|set|map|element|counter|flowtable|quota|limit|ct \S+) ip6? (\S+)(?: (\S+))?/.exec(line);
  // Affinity maps are filled by the packet path: their entries are never planned.
  if (m && m[1] === ns.nftTable) return !(m[2]?.startsWith('aff_') ?? false);
  return (line.match(/\bELASTIC-[\w-]*/g) ?? []).some((chain) => ownsChain(ns, chain)) || HOOK_CHAINS.test(line);
}

/** Feed monitor output line by line; `drift()` is called for a foreign batch that touched ours. */
export function driftParser(ns: Namespace, ownPids: () => readonly number[], drift: (why: string) => void): (line: string) => void {
  let touched: string | null = null;
  return (line) => {
    const gen = /^# new generation \d+ by process (\d+)/.exec(line);
    if (gen) {
      if (touched !== null && !ownPids().includes(Number(gen[1]))) drift(`${touched.slice(0, 120)} (by pid ${gen[1]})`);
      touched = null;
      return;
    }
    if (touched === null && touchesOurs(line, ns)) touched = line;
  };
}

/** Should this periodic resync read the kernel? (pure: the watcher's decision) */
export function fullReadDue(o: { monitoring: boolean; suspected: boolean; resyncsSinceFull: number }): boolean {
  return !o.monitoring || o.suspected || o.resyncsSinceFull + 1 >= FULL_READ_EVERY;
}

export class NftDriftMonitor {
  private child: ReturnType<typeof spawnMonitor> | null = null;
  private closed = false;

  constructor(
    private readonly ns: Namespace,
    private readonly ownPids: () => readonly number[],
    private readonly onDrift: (why: string) => void,
    private readonly opts: ToolEnv = {},
  ) {}

  /** Running (false: not started, nft missing, or it exited: every resync reads the kernel then). */
  get monitoring(): boolean {
    return this.child !== null && this.child.exitCode === null;
  }

  start(): void {
    if (this.child || this.closed) return;
    const child = spawnMonitor(this.opts);
    this.child = child;
    const feed = driftParser(this.ns, this.ownPids, this.onDrift);
    let rest = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      if (rest.length > 1 << 20) rest = ''; // one line this long is not ours to read
      for (const l of lines) feed(l);
    });
    // Events may have been missed between its start and now, or it ended: the caller reads the kernel.
    void child.then(() => {
      child.stdin?.end();
      if (this.child === child) this.child = null;
      if (!this.closed) this.onDrift('nft monitor ended');
    });
  }

  close(): void {
    this.closed = true;
    const child = this.child;
    this.child = null;
    child?.stdin?.end(); // the shell's `cat` ends, and kills nft monitor
  }
}

/**
 * `nft monitor` through a small shell that ends it when our end of its stdin closes: nft monitor
 * never reads its input, so an elastic killed with -9 would otherwise leave it running forever.
 * The shell exits when nft does (nft missing, killed), which the caller sees as the end.
 */
const MONITOR_SCRIPT = 'exec 3<&0; nft monitor </dev/null & p=$!; { cat <&3 >/dev/null; kill $p 2>/dev/null; } & wait $p';

function spawnMonitor(opts: ToolEnv) {
  return execa('sh', ['-c', MONITOR_SCRIPT], { buffer: false, reject: false, stdin: 'pipe', stderr: 'ignore', ...(opts.env ? { env: opts.env, extendEnv: false } : {}) });
}
