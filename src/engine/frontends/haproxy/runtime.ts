import { connect } from 'node:net';
import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';

/**
 * A client for HAProxy's runtime API (the stats socket) and master CLI (the -S socket).
 * One connection per command, half-closed after the command so HAProxy answers and closes
 * (the master CLI keeps the connection open otherwise). Commands are built from identifiers
 * and addresses only; anything with a separator or a control character is refused here too.
 */
export class RuntimeApiError extends UserError {}

export interface RuntimeOptions {
  /** Path of the unix socket. */
  socket: string;
  /** Prefix for every command: `@1 ` sends it from the master CLI to the current worker. */
  prefix?: string;
  timeoutMs?: number;
}

/** `payload`: multi-line data after `<<` (`set ssl cert`), ended by an empty line, so it may hold none. */
export function sendCommand(socket: string, command: string, timeoutMs = 5000, payload?: string): Promise<string> {
  if (/[;\n\r\0]/.test(command)) return Promise.reject(new Error(`refusing runtime command with a separator: ${printable(command, 80)}`));
  if (payload !== undefined && (/\n\s*\n|[\r\0]/.test(payload.trim()) || payload.trim() === '')) return Promise.reject(new Error('refusing a runtime payload that is empty or holds a blank line'));
  return new Promise((resolve, reject) => {
    const sock = connect(socket);
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new RuntimeApiError(`HAProxy socket ${socket} did not answer "${command.split(' ').slice(0, 3).join(' ')}" in ${timeoutMs} ms`, 'check that HAProxy is running and the socket path', ExitCode.unavailable));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.end(payload === undefined ? `${command}\n` : `${command} <<\n${payload.trim()}\n\n`));
    sock.on('data', (d: string) => (out += d));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new RuntimeApiError(`cannot reach HAProxy at ${socket}: ${err.code ?? err.message}`, 'is HAProxy running with this stats/master socket? (render --start starts it)', ExitCode.unavailable, { cause: err }));
    });
  });
}

/** One row of `show servers state` (the fields we use). */
export interface ServerState {
  backend: string;
  server: string;
  address: string;
  port: number;
  /** 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  /** Admin flags: 0x01 forced maint, 0x02 inherited maint, 0x04 config maint, 0x08/0x10 drain. */
  adminState: number;
  weight: number;
}

export function parseServersState(text: string): ServerState[] {
  const rows: ServerState[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#') || /^\d+$/.test(line.trim())) continue;
    const f = line.trim().split(/\s+/);
    if (f.length < 19) continue;
    rows.push({ backend: f[1]!, server: f[3]!, address: f[4]!, opState: Number(f[5]), adminState: Number(f[6]), weight: Number(f[7]), port: Number(f[18]) });
  }
  return rows;
}

export const isMaint = (s: Pick<ServerState, 'adminState'>) => (s.adminState & 0x03) !== 0;
export const isDrain = (s: Pick<ServerState, 'adminState'>) => (s.adminState & 0x18) !== 0;

/** `show stat` CSV rows keyed by column name. */
export function parseStat(text: string): Array<Record<string, string>> {
  const lines = text.split('\n').filter(Boolean);
  const header = lines[0]?.replace(/^#\s*/, '').split(',') ?? [];
  return lines.slice(1).map((l) => {
    const cells = l.split(',');
    return Object.fromEntries(header.map((h, i) => [h, cells[i] ?? '']));
  });
}

/** Per-server counters for status and `top`. */
export interface ServerStat {
  backend: string;
  server: string;
  status: string;
  scur: number; // current sessions
  qcur: number; // queued
  stot: number; // total sessions (hits)
  rate: number;
  hrsp5xx: number;
  address: string;
}

export function serverStats(rows: Array<Record<string, string>>): ServerStat[] {
  return rows
    .filter((r) => r.svname !== 'FRONTEND' && r.svname !== 'BACKEND' && r.type === '2')
    .map((r) => ({
      backend: r.pxname ?? '',
      server: r.svname ?? '',
      status: r.status ?? '',
      scur: Number(r.scur) || 0,
      qcur: Number(r.qcur) || 0,
      stot: Number(r.stot) || 0,
      rate: Number(r.rate) || 0,
      hrsp5xx: Number(r.hrsp_5xx) || 0,
      address: r.addr ?? '',
    }));
}

const OK_SET = /^(|IP changed from .*|no need to change the (addr|port).*|.*port changed from .*)$/s;

export class HaproxyRuntime {
  constructor(readonly opts: RuntimeOptions) {}

  async command(cmd: string): Promise<string> {
    return sendCommand(this.opts.socket, `${this.opts.prefix ?? ''}${cmd}`, this.opts.timeoutMs);
  }

  /** A `set ...` command: HAProxy answers with nothing or a change note on success, else the error. */
  async set(cmd: string): Promise<void> {
    const out = (await this.command(cmd)).trim();
    if (!OK_SET.test(out)) {
      throw new RuntimeApiError(`HAProxy refused "${cmd}": ${printable(out.split('\n')[0] ?? out, 160)}`, 'a structural change needs a reload; check the backend/server names', ExitCode.refused);
    }
  }

  async serversState(backend?: string): Promise<ServerState[]> {
    return parseServersState(await this.command(backend ? `show servers state ${backend}` : 'show servers state'));
  }

  async stat(): Promise<ServerStat[]> {
    return serverStats(parseStat(await this.command('show stat')));
  }

  async alive(): Promise<boolean> {
    try {
      return /Name: HAProxy/.test(await this.command('show info'));
    } catch {
      return false;
    }
  }
}
