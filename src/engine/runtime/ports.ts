import { readdir, readFile, readlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import { parseProcStat } from './pid.js';

/**
 * Who listens on a port: the kernel's listening TCP sockets (/proc/net/tcp and tcp6), and which
 * process holds each (/proc/<pid>/fd -> socket:[inode]). Before a proxy config with a bind is
 * put in force, every bind must be free or held by the proxy process elastic manages for that
 * config. HAProxy binds with SO_REUSEPORT, so "the bind worked" proves nothing: a second HAProxy
 * on a port silently takes a share of its connections, and a bind that fails makes HAProxy pause
 * every listener of the running workers while it retries (about 2 s).
 */
export interface Bind {
  readonly address: string;
  readonly port: number;
}

export interface Listener extends Bind {
  readonly inode: number;
}

export interface Conflict {
  readonly bind: Bind;
  readonly listener: Listener;
  /** The process holding the socket, when it can be told (root sees every process). */
  readonly holder: { pid: number; name: string } | null;
}

const LISTEN = '0A';

/** `/proc/net/tcp{,6}` hex address (32-bit words in host byte order, little-endian here). */
function hexAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].map((b) => parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  const v6 = groups.join(':');
  if (v6.startsWith('0:0:0:0:0:ffff:')) return bytes.slice(12).join('.'); // v4-mapped
  return canonicalAddress(v6);
}

/** One spelling per address (IPv6 compressed, as the WHATWG URL parser writes it). */
export function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** Listening sockets in one /proc/net/tcp or tcp6 table (pure). */
export function parseProcNetTcp(text: string): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== LISTEN) continue;
    const [addr, port] = f[1]!.split(':');
    if (!addr || !port || !/^[0-9A-F]+$/i.test(addr)) continue;
    out.push({ address: hexAddress(addr), port: parseInt(port, 16), inode: Number(f[9]) });
  }
  return out;
}

export async function listeningSockets(): Promise<Listener[]> {
  const tables = await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map((p) => readFile(p, 'utf8').catch(() => '')));
  return tables.flatMap(parseProcNetTcp);
}

const WILDCARD = new Set(['0.0.0.0', '::']);

/** Would binding `bind` collide with (or share) this listening socket? */
export function overlaps(bind: Bind, l: Bind): boolean {
  if (bind.port !== l.port) return false;
  const [a, b] = [canonicalAddress(bind.address), canonicalAddress(l.address)];
  return a === b || WILDCARD.has(a) || WILDCARD.has(b);
}

/** Every process as pid -> parent pid (one pass over /proc). */
async function parents(): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const st = parseProcStat(await readFile(`/proc/${name}/stat`, 'utf8').catch(() => ''));
    if (st) out.set(Number(name), st.ppid);
  }
  return out;
}

/** These processes and all their descendants (a proxy master's workers, old and new). */
export async function withDescendants(roots: readonly number[]): Promise<Set<number>> {
  const all = new Set(roots.filter((p) => Number.isInteger(p) && p > 1));
  if (all.size === 0) return all;
  const ppid = await parents();
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, parent] of ppid) if (all.has(parent) && !all.has(pid)) (all.add(pid), (grew = true));
  }
  return all;
}

/** Socket inodes a process holds open. */
async function socketInodes(pid: number): Promise<number[]> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return links.map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter((x): x is string => x !== undefined).map(Number);
}

/** Which process holds each of these inodes (scans every process: only called on a conflict). */
async function holders(inodes: ReadonlySet<number>): Promise<Map<number, { pid: number; name: string }>> {
  const out = new Map<number, { pid: number; name: string }>();
  for (const pid of (await parents()).keys()) {
    for (const inode of await socketInodes(pid)) {
      if (!inodes.has(inode) || out.has(inode)) continue;
      const name = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
      out.set(inode, { pid, name: printable(name, 32) });
    }
    if (out.size === inodes.size) break;
  }
  return out;
}

/**
 * Binds that someone other than `owners` (and their descendants) listens on. `owners` are the
 * pids of the proxy elastic manages for this config (none when it is not running).
 */
export async function foreignListeners(binds: readonly Bind[], owners: readonly number[]): Promise<Conflict[]> {
  if (binds.length === 0) return [];
  const hits = (await listeningSockets()).flatMap((l) => binds.filter((b) => overlaps(b, l)).map((bind) => ({ bind, listener: l })));
  if (hits.length === 0) return [];
  const ours = new Set<number>();
  for (const pid of await withDescendants(owners)) for (const inode of await socketInodes(pid)) ours.add(inode);
  const foreign = hits.filter((h) => !ours.has(h.listener.inode));
  if (foreign.length === 0) return [];
  const who = await holders(new Set(foreign.map((h) => h.listener.inode)));
  return foreign.map((h) => ({ ...h, holder: who.get(h.listener.inode) ?? null }));
}

export const showBind = (b: Bind) => (b.address.includes(':') ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`);

export function describeConflict(c: Conflict): string {
  const by = c.holder ? `pid ${c.holder.pid} (${c.holder.name})` : 'another process';
  return `${showBind(c.bind)} is already served by ${by} on ${showBind(c.listener)}`;
}

/** One line for the operator: what is taken and by whom. */
export function portsInUseError(conflicts: readonly Conflict[]): UserError {
  const first = conflicts.map(describeConflict);
  const more = first.length > 2 ? ` (+${first.length - 2} more)` : '';
  return new UserError(`bind port in use: ${first.slice(0, 2).join('; ')}${more}`, 'pick another port, or stop what listens there; nothing was changed', ExitCode.unavailable);
}

/** Refuse (UserError) when any bind is held by a process that is not one of `owners`. */
export async function assertBindsFree(binds: readonly Bind[], owners: readonly number[]): Promise<void> {
  const conflicts = await foreignListeners(binds, owners);
  if (conflicts.length > 0) throw portsInUseError(conflicts);
}

function hostPort(text: string, defaultAddress: string): Bind[] {
  const s = text.replace(/^(ipv4|ipv6|tcp4|tcp6|tcp)@/, '');
  let address = defaultAddress;
  let ports = s;
  const v6 = /^\[([^\]]+)\]:(.+)$/.exec(s);
  if (v6) [address, ports] = [v6[1]!, v6[2]!];
  else if (s.includes(':')) {
    const i = s.lastIndexOf(':');
    [address, ports] = [s.slice(0, i), s.slice(i + 1)];
    if (address === '' || address === '*') address = text.startsWith('ipv6@') ? '::' : '0.0.0.0';
  }
  if (address === 'localhost') address = '127.0.0.1';
  const range = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(ports);
  if (!range || !isIP(address)) return [];
  const lo = Number(range[1]);
  const hi = Math.min(Number(range[2] ?? lo), lo + 1024);
  const out: Bind[] = [];
  for (let p = lo; p <= hi; p++) if (p >= 1 && p <= 65535) out.push({ address: canonicalAddress(address), port: p });
  return out;
}

/**
 * The TCP binds a rendered config asks for (pure): HAProxy `bind` lines (comma lists, port
 * ranges, ipv4@/ipv6@), nginx `listen` directives. Unix sockets, fd@ and UDP are not ports.
 */
export function configBinds(proxy: string, text: string): Bind[] {
  const out: Bind[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (proxy === 'haproxy') {
      const m = /^bind\s+(\S+)/.exec(line);
      if (!m) continue;
      for (const part of m[1]!.split(',')) if (!/^(unix|abns|fd|sockpair|udp\d?|quic\d?)@|^\//.test(part)) out.push(...hostPort(part, '0.0.0.0'));
    } else if (proxy === 'nginx') {
      const m = /^listen\s+([^\s;]+)/.exec(line);
      if (!m || m[1]!.startsWith('unix:') || /\bquic\b/.test(line)) continue;
      out.push(...hostPort(m[1]!, '0.0.0.0'));
    }
  }
  const seen = new Set<string>();
  return out.filter((b) => !seen.has(showBind(b)) && seen.add(showBind(b)));
}
