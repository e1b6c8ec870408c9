import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import type { DataplaneKind } from './model.js';
import type { NftSession } from './nft-session.js';

/**
 * The only place that runs iptables/nft/conntrack: argument arrays (never a shell), errors turned
 * into UserErrors with what to try. Transactions are handed over as a complete file, not piped:
 * if elastic is killed mid-write, a pipe would end early and the tool could commit a shorter (but
 * valid) batch; a file is either whole or never passed.
 */
export interface ToolEnv {
  env?: NodeJS.ProcessEnv;
}

export async function runTool(bin: string, args: string[], opts: ToolEnv = {}): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  try {
    const child = execa(bin, args, { reject: false, env: opts.env, extendEnv: opts.env === undefined, stdin: 'ignore', timeout: 30_000 });
    if (child.pid !== undefined) rememberToolPid(child.pid);
    const r = await child;
    if (r.failed && r.exitCode === undefined) throw Object.assign(new Error(r.shortMessage ?? 'failed'), { code: (r as { code?: string }).code });
    return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? 1 };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || /ENOENT/.test((err as Error).message)) throw missingTool(bin);
    throw err;
  }
}

/**
 * The pids of this process's recent tool runs (iptables-restore, nft -f): their ruleset changes
 * are ours, not drift (nft-monitor.ts). Bounded: the last 64.
 */
const toolPids: number[] = [];
export const recentToolPids = (): readonly number[] => toolPids;
function rememberToolPid(pid: number): void {
  toolPids.push(pid);
  if (toolPids.length > 64) toolPids.shift();
}

export function missingTool(bin: string): UserError {
  const pkg = bin.startsWith('nft') ? 'nftables' : bin.startsWith('conntrack') ? 'conntrack' : 'iptables';
  return new UserError(`${bin} was not found in PATH`, `install the ${pkg} package (apt-get install ${pkg}), or choose the other --dataplane`, ExitCode.unavailable);
}

/** A tool's stderr that says "you are not allowed" becomes the permission error, everything else stays. */
function permissionError(stderr: string): UserError | null {
  if (!/Permission denied|Operation not permitted|you must be root/i.test(stderr)) return null;
  return new UserError('not allowed to change the firewall (need root or CAP_NET_ADMIN)', 'run elastic map-image as root (sudo), or grant CAP_NET_ADMIN', ExitCode.permission);
}

/** Refuse early, before discovery and before any state is written: root or CAP_NET_ADMIN. */
export async function requireNetAdmin(): Promise<void> {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return;
  let eff = 0n;
  try {
    const status = await readFile('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
    if (m) eff = BigInt(`0x${m[1]}`);
  } catch {
    /* not Linux: fall through to the error */
  }
  const CAP_NET_ADMIN = 12n;
  if ((eff >> CAP_NET_ADMIN) & 1n) return;
  throw new UserError('map-image needs root or CAP_NET_ADMIN to program the kernel', 'run it as root (sudo elastic map-image ...)', ExitCode.permission);
}

/** `auto`: nft when it is installed and answers, else iptables; an explicit choice must exist. */
export async function detectDataplane(requested: DataplaneKind | 'auto', opts: ToolEnv = {}): Promise<DataplaneKind> {
  const works = async (bin: string, args: string[]) => {
    try {
      const r = await runTool(bin, args, opts);
      if (r.exitCode !== 0) throw permissionError(r.stderr) ?? new UserError(`${bin} does not work here: ${printable(r.stderr.split('\n')[0] ?? '', 200)}`, 'check that the nf_tables kernel module is available', ExitCode.unavailable);
      return true;
    } catch (err) {
      if (requested !== 'auto') throw err;
      if (err instanceof UserError && err.exitCode === ExitCode.permission) throw err;
      return false;
    }
  };
  if (requested !== 'auto') {
    await works(requested === 'nft' ? 'nft' : 'iptables-save', requested === 'nft' ? ['list', 'tables'] : ['-t', 'nat']);
    return requested;
  }
  if (await works('nft', ['list', 'tables'])) return 'nft';
  if (await works('iptables-save', ['-t', 'nat'])) return 'iptables';
  throw new UserError('neither nft nor iptables works on this host', 'install nftables (preferred) or iptables', ExitCode.unavailable);
}

/** Read a tool's listing; a missing nft table is "nothing of ours", not an error. */
export async function readTool(bin: string, args: string[], opts: ToolEnv = {}): Promise<string | null> {
  const r = await runTool(bin, args, opts);
  if (r.exitCode === 0) return r.stdout;
  const denied = permissionError(r.stderr);
  if (denied) throw denied;
  if (/No such file or directory/.test(r.stderr)) return null;
  throw new UserError(`${bin} ${args.join(' ')} failed: ${printable(r.stderr.trim().split('\n')[0] ?? '', 200)}`, 'check the kernel and the tool installation', ExitCode.unavailable);
}

/**
 * Apply one transaction (nft: through `opts.nft`, a long-lived session, when there is one). On
 * refusal the kernel keeps what it had (both tools commit all or nothing); the error names the
 * failing line of our text, so an operator can see what was refused.
 */
export async function applyTransaction(kind: DataplaneKind, text: string, opts: ToolEnv & { nft?: NftSession } = {}): Promise<void> {
  if (!text) return;
  if (kind === 'nft' && opts.nft) {
    let out: string | false;
    try {
      out = await opts.nft.apply(text);
    } catch (err) {
      throw new UserError(`nft did not finish the transaction: ${printable((err as Error).message, 200)}`, 'the rules are re-read and the previous state restored; re-run, and check the nftables installation if it repeats', ExitCode.unavailable);
    }
    if (out !== false) {
      if (/Error/.test(out)) throw refusal(kind, text, out);
      return; // committed (nft's warnings are not errors)
    }
    // false: no session can run here; nft -f below
  }
  const dir = await mkdtemp(join(tmpdir(), 'elastic-dp-'));
  const file = join(dir, kind === 'nft' ? 'rules.nft' : 'rules.ipt');
  try {
    await writeFile(file, text, { mode: 0o600 });
    const [bin, args] = kind === 'nft' ? ['nft', ['-f', file]] : ['iptables-restore', ['--noflush', '--counters', file]];
    const r = await runTool(bin as string, args as string[], opts);
    if (r.exitCode === 0) return;
    throw refusal(kind, text, r.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function refusal(kind: DataplaneKind, text: string, stderr: string): UserError {
  const denied = permissionError(stderr);
  if (denied) return denied;
  const lineNo = Number((kind === 'nft' ? /:(\d+):\d+(?:-\d+)?: Error/.exec(stderr) : /(?:Error occurred at line: |line )(\d+)/.exec(stderr))?.[1] ?? 0);
  const line = lineNo > 0 ? text.split('\n')[lineNo - 1] : undefined;
  const why = stderr
    .split('\n')
    .map((l) => l.trim())
    .find((l) => /Error|does not exist|failed|invalid/i.test(l) && !/^Try /.test(l));
  const tool = kind === 'nft' ? 'nft' : 'iptables-restore';
  return new UserError(
    `the kernel refused the ${tool} transaction${lineNo ? ` at line ${lineNo}` : ''}${line ? ` (${printable(line, 160)})` : ''}: ${printable(why ?? stderr.trim(), 200)}`,
    'nothing was changed: the previous rules are still in force; re-run with --debug to see the whole transaction',
    ExitCode.refused,
  );
}
