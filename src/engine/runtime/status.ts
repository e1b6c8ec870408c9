import { connect, createServer, type Server, type Socket } from 'node:net';
import { chmod, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isIdent, printable } from '../model/validate.js';
import { describeError, ExitCode, UserError } from '../errors.js';
import { runDir } from './paths.js';

/**
 * Status sockets: every long-running elastic process serves one unix socket in the registry
 * directory (`/run/elastic`, or $XDG_RUNTIME_DIR/elastic), named `<kind>.<name>.sock`.
 * The directory is 0700 and the socket 0600: reaching it is the authentication.
 *
 * Protocol (version 1), newline-delimited JSON both ways:
 *   client: {"op":"snapshot"}                -> server: one Snapshot line, then closes
 *   client: {"op":"stream","intervalMs":1000} -> server: a Snapshot line now, then one on every
 *                                               change (coalesced) and at least every interval
 *   client: {"op":"action","action":"drain","args":{...}} -> server: {"ok":true,...} or {"ok":false,"error":"..."}
 */
export const STATUS_PROTOCOL = 1;

export interface StatusEvent {
  readonly time: string;
  readonly type: string; // added, removed, reload, runtime, refused, scale, error...
  readonly message: string;
  readonly service?: string;
}

export interface Snapshot {
  readonly v: number;
  readonly kind: string; // discover, map-image, render, edge, node, deploy, run
  readonly name: string;
  readonly pid: number;
  readonly started: string;
  readonly time: string;
  readonly config: Record<string, unknown>;
  /** Per-service state and counters; the shape per kind is documented in docs/ARCHITECTURE.md. */
  readonly services: Record<string, unknown>;
  readonly events: readonly StatusEvent[];
  /** A fleet host's view of its fleet (`cluster status`'s shape); absent elsewhere. */
  readonly fleet?: unknown;
}

interface StatusRequest {
  op?: string;
  intervalMs?: number;
  action?: string;
  args?: Record<string, unknown>;
}

export type ActionHandler = (args: Record<string, unknown>) => Promise<Record<string, unknown>>;

export interface StatusServerOptions {
  kind: string;
  name: string;
  config?: Record<string, unknown>;
  /** Content provider: called for each snapshot. */
  services: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** A fleet host: its fleet's status, in each snapshot. */
  fleet?: () => Promise<unknown>;
  actions?: Record<string, ActionHandler>;
  dir?: string;
  maxEvents?: number;
}

export class StatusServer {
  private server: Server | null = null;
  private readonly events: StatusEvent[] = [];
  private readonly streams = new Set<{ sock: Socket; timer: NodeJS.Timeout }>();
  private notifyTimer: NodeJS.Timeout | null = null;
  readonly started = new Date().toISOString();
  readonly path: string;

  constructor(private readonly opts: StatusServerOptions) {
    if (!isIdent(opts.kind) || !isIdent(opts.name)) throw new Error('status kind and name must be identifiers');
    this.path = join(opts.dir ?? runDir(), `${opts.kind}.${opts.name}.sock`);
  }

  event(type: string, message: string, service?: string): void {
    this.events.push({ time: new Date().toISOString(), type, message: printable(message, 300), service });
    const max = this.opts.maxEvents ?? 200;
    if (this.events.length > max) this.events.splice(0, this.events.length - max);
    this.notify();
  }

  /** Something changed: push a snapshot to streaming clients (coalesced to 10/s). */
  notify(): void {
    if (this.streams.size === 0 || this.notifyTimer) return;
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = null;
      for (const s of this.streams) void this.send(s.sock);
    }, 100);
    this.notifyTimer.unref();
  }

  async snapshot(): Promise<Snapshot> {
    return {
      v: STATUS_PROTOCOL,
      kind: this.opts.kind,
      name: this.opts.name,
      pid: process.pid,
      started: this.started,
      time: new Date().toISOString(),
      config: this.opts.config ?? {},
      services: await this.opts.services(),
      events: this.events.slice(-50),
      ...(this.opts.fleet ? { fleet: await this.opts.fleet().catch((err: unknown) => ({ error: describeError(err) })) } : {}),
    };
  }

  async listen(): Promise<string> {
    const dir = this.opts.dir ?? runDir();
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (await isAlive(this.path)) {
      throw new UserError(
        `another elastic ${this.opts.kind} named "${this.opts.name}" is already running (${this.path})`,
        'stop it first, or pick another --name',
        ExitCode.refused,
      );
    }
    await rm(this.path, { force: true }); // stale socket of a dead process
    // allowHalfOpen: a client may send its request and half-close at once (`echo ... | socat -`);
    // without it Node ends our side on the client's FIN, before an async snapshot is written.
    const server = createServer({ allowHalfOpen: true }, (sock) => this.handle(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    server.unref();
    await chmod(this.path, 0o600);
    this.server = server;
    return this.path;
  }

  async close(): Promise<void> {
    if (this.notifyTimer) clearTimeout(this.notifyTimer);
    for (const s of this.streams) {
      clearInterval(s.timer);
      s.sock.destroy();
    }
    this.streams.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    await rm(this.path, { force: true });
  }

  private handle(sock: Socket): void {
    sock.setEncoding('utf8');
    let buf = '';
    let taken = false;
    const guard = setTimeout(() => sock.destroy(), 5000);
    sock.on('error', () => {});
    const take = (line: string) => {
      taken = true;
      clearTimeout(guard);
      sock.removeAllListeners('data');
      let req: unknown;
      try {
        req = JSON.parse(line);
      } catch {
        req = null;
      }
      if (typeof req !== 'object' || req === null) {
        sock.end(`${JSON.stringify({ ok: false, error: 'bad request' })}\n`);
        return;
      }
      void this.dispatch(sock, req as StatusRequest);
    };
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 64 * 1024) return sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl >= 0) take(buf.slice(0, nl));
    });
    // The client finished writing: a last line without a newline is still the request; with no
    // request at all there is nothing to answer.
    sock.on('end', () => {
      if (taken) return;
      if (buf.trim()) take(buf);
      else {
        clearTimeout(guard);
        sock.destroy();
      }
    });
  }

  private async dispatch(sock: Socket, req: StatusRequest): Promise<void> {
    if (req.op === 'snapshot') {
      await this.send(sock);
      sock.end();
    } else if (req.op === 'stream') {
      if (sock.destroyed) return;
      const interval = Math.min(60_000, Math.max(100, Number(req.intervalMs) || 1000));
      const entry = { sock, timer: setInterval(() => void this.send(sock), interval) };
      this.streams.add(entry);
      sock.on('close', () => {
        clearInterval(entry.timer);
        this.streams.delete(entry);
      });
      await this.send(sock);
    } else if (req.op === 'action' && req.action && this.opts.actions?.[req.action]) {
      try {
        const result = await this.opts.actions[req.action]!(req.args ?? {});
        sock.end(`${JSON.stringify({ ok: true, ...result })}\n`);
      } catch (err) {
        sock.end(`${JSON.stringify({ ok: false, error: err instanceof Error ? err.message : String(err) })}\n`);
      }
    } else {
      sock.end(`${JSON.stringify({ ok: false, error: `unknown op ${String(req.op ?? '')}` })}\n`);
    }
  }

  private async send(sock: Socket): Promise<void> {
    if (sock.destroyed) return;
    try {
      sock.write(`${JSON.stringify(await this.snapshot())}\n`);
    } catch {
      sock.destroy();
    }
  }
}

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The registry: every live status socket in the directory. Stale ones are skipped. */
export async function listStatusSockets(dir = runDir()): Promise<Array<{ kind: string; name: string; path: string }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out = [];
  for (const f of names.sort()) {
    const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*?)\.([A-Za-z0-9][A-Za-z0-9_.-]*)\.sock$/.exec(f);
    if (m) out.push({ kind: m[1]!, name: m[2]!, path: join(dir, f) });
  }
  return out;
}

/** One request, one answer line. */
export function requestStatus<T = Snapshot>(path: string, req: Record<string, unknown> = { op: 'snapshot' }, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`status socket ${path} did not answer in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        sock.destroy();
        try {
          resolve(JSON.parse(buf.slice(0, nl)) as T);
        } catch (err) {
          reject(err);
        }
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Stream snapshots from a status socket until the signal aborts or the socket closes. */
export async function* streamStatus(path: string, intervalMs: number, signal: AbortSignal): AsyncGenerator<Snapshot> {
  const sock = connect(path);
  sock.setEncoding('utf8');
  const onAbort = () => sock.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  sock.on('connect', () => sock.write(`${JSON.stringify({ op: 'stream', intervalMs })}\n`));
  let buf = '';
  try {
    for await (const chunk of sock as AsyncIterable<string>) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        yield JSON.parse(line) as Snapshot;
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    sock.destroy();
  }
}
