import { execa, type ResultPromise } from 'execa';
import { mkdtemp, mkdir, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';

/**
 * Local HTTP backends for render tests: busybox httpd processes on 127.0.0.1, each serving
 * /id with its own name. Only the pids started here are ever killed.
 */
export class LocalBackends {
  private readonly procs: ResultPromise[] = [];
  private dir = '';

  async start(ports: number[]): Promise<void> {
    this.dir ||= await mkdtemp(join(tmpdir(), 'elastic-render-www-'));
    for (const port of ports) {
      const www = join(this.dir, String(port));
      await mkdir(www, { recursive: true });
      await writeFile(join(www, 'id'), `b${port}\n`);
      const p = execa('busybox', ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', www], { reject: false, stdin: 'ignore' });
      this.procs.push(p);
      await waitPort(port);
    }
  }

  async stop(): Promise<void> {
    for (const p of this.procs) if (p.pid) p.kill('SIGTERM');
    await Promise.allSettled(this.procs);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

export async function waitPort(port: number, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** GET a path, resolving to the body (or throwing). */
export async function httpGet(port: number, path = '/id', timeoutMs = 2000): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(timeoutMs), headers: { connection: 'close' } });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return (await res.text()).trim();
}

/** The bodies of `n` sequential GETs (a failed one counts as `fail`). */
export async function answering(port: number, n: number, fail = 'ERR'): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await httpGet(port).catch(() => fail));
  return seen;
}

/** wrk's summary: requests, non-2xx/3xx and socket errors. */
export interface WrkResult {
  requests: number;
  non2xx: number;
  socketErrors: number;
  raw: string;
}

export function parseWrk(out: string): WrkResult {
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = m ? Number(m[1]) + Number(m[2]) + Number(m[3]) + Number(m[4]) : 0;
  return { requests, non2xx, socketErrors, raw: out };
}

/**
 * A bounded wrk run (time and connections) against 127.0.0.1. `stop` ends it early: wrk gets
 * SIGINT, which it answers by stopping and printing its summary as at the end of `seconds`.
 */
export function wrk(port: number, seconds: number, connections = 10, path = '/id', stop?: AbortSignal): Promise<WrkResult> {
  const p = execa('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', `http://127.0.0.1:${port}${path}`], { reject: false, timeout: (seconds + 20) * 1000, stdin: 'ignore' });
  stop?.addEventListener('abort', () => p.kill('SIGINT'), { once: true });
  return p.then((r) => {
    if (r.exitCode !== 0) throw new Error(`wrk failed: ${r.stderr || r.shortMessage}`);
    return parseWrk(String(r.stdout));
  });
}

/** Start a varnishd of our own (empty VCL) in `dir`, listening on 127.0.0.1:port; returns its pid and -n. */
export async function startVarnishd(dir: string, port: number, adminPort: number): Promise<{ pid: number; work: string }> {
  const work = join(dir, 'varnish');
  const init = join(dir, 'init.vcl');
  await writeFile(init, 'vcl 4.1;\nbackend default none;\n');
  await execa('varnishd', ['-a', `127.0.0.1:${port}`, '-T', `127.0.0.1:${adminPort}`, '-f', init, '-n', work, '-P', join(dir, 'varnishd.pid'), '-s', 'malloc,16m'], { stdin: 'ignore' });
  const pid = Number(await readFile(join(dir, 'varnishd.pid'), 'utf8'));
  await waitPort(port);
  return { pid, work };
}
