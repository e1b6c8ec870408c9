import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { waitPort } from './render-backends.js';

/**
 * Port-ownership tests: an HAProxy that is not elastic's (plain, daemonised, SO_REUSEPORT as
 * HAProxy always binds), and a bounded request loop that counts who answered.
 */
export interface ForeignHaproxy {
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startForeignHaproxy(dir: string, bind: number, backend: number): Promise<ForeignHaproxy> {
  const cfg = join(dir, 'foreign-haproxy.cfg');
  const pidFile = join(dir, 'foreign-haproxy.pid');
  await writeFile(cfg, `global\n  maxconn 200\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend fe\n  bind 127.0.0.1:${bind}\n  default_backend be\nbackend be\n  server s1 127.0.0.1:${backend}\n`);
  await execa('haproxy', ['-D', '-f', cfg, '-p', pidFile], { stdin: 'ignore', timeout: 10_000 });
  const pid = Number((await readFile(pidFile, 'utf8')).trim().split('\n')[0]);
  await waitPort(bind);
  return {
    pid,
    async stop() {
      if (!pidAlive(pid)) return;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    },
  };
}

export interface LoopResult {
  /** Answers by body (`b<port>` from a LocalBackends server), failures by error code. */
  readonly answers: Map<string, number>;
  readonly ok: number;
  readonly failed: number;
  readonly failures: string[];
}

/** Sequential GETs, a new connection each, until `ms` passed or `max` were made. */
export async function requestLoop(url: string, opts: { ms: number; max: number; pauseMs?: number }, stop?: { stopped: boolean }): Promise<LoopResult> {
  const end = Date.now() + opts.ms;
  const answers = new Map<string, number>();
  const failures: string[] = [];
  let ok = 0;
  for (let n = 0; n < opts.max && Date.now() < end && !stop?.stopped; n++) {
    const t = Date.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000), headers: { connection: 'close' } });
      const body = (await res.text()).trim();
      if (res.status !== 200) throw Object.assign(new Error(`HTTP ${res.status}`), { code: `HTTP ${res.status}` });
      answers.set(body, (answers.get(body) ?? 0) + 1);
      ok++;
    } catch (err) {
      const e = err as { cause?: { code?: string }; code?: string; name: string };
      failures.push(`${new Date(t).toISOString().slice(17, 23)} ${e.cause?.code ?? e.code ?? e.name}`);
    }
    await new Promise((r) => setTimeout(r, opts.pauseMs ?? 10));
  }
  return { answers, ok, failed: failures.length, failures };
}
