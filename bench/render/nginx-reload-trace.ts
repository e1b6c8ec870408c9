/**
 * Trace of nginx membership changes under keep-alive load (issue 14 item 1): runs the membership
 * scenario of test/integration/render-membership.test.ts `runs` times, optionally with `busy`
 * CPU-bound processes (each bounded in time) beside it, and prints every request our keep-alive
 * client lost (time, local port, error, requests the connection carried, how long it sat idle)
 * next to the nginx worker events seen by polling /proc every 5 ms (new worker, old worker
 * "shutting down", worker gone). Usage:
 *   npx tsx bench/render/nginx-reload-trace.ts [runs=5] [busy=0] [template]
 * Port 25710.
 */
import { execa, type ResultPromise } from 'execa';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { childPids } from '../../src/engine/frontends/nginx/applier.js';
import { defaultPaths } from '../../src/engine/render.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { TestContainers, requireDocker } from '../../test/support/docker.js';
import { membershipUnderLoad, stopWatches } from '../../test/support/render-membership.js';

const runs = Number(process.argv[2] ?? 5);
const busy = Number(process.argv[3] ?? 0);
const template = process.argv[4];
await requireDocker();
const dir = await mkdtemp(join(tmpdir(), 'elastic-bench-ntrace-'));
await chmod(dir, 0o755);
const env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
const tc = new TestContainers();
const hogs: ResultPromise[] = [];
let total = { wrk: 0, wrkErr: 0, own: 0, ownFail: 0 };

/** Worker events of the nginx whose pid file is `pidFile`, polled until `stop`. */
function watchWorkers(pidFile: string, stop: AbortSignal): string[] {
  const events: string[] = [];
  const state = new Map<number, string>();
  void (async () => {
    while (!stop.aborted) {
      const master = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (master > 1) {
        const now = new Map<number, string>();
        for (const w of await childPids(master)) now.set(w, (await readFile(`/proc/${w}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ').trim());
        for (const [w, t] of now) if (state.get(w) !== t) events.push(`${Date.now()} worker ${w}: ${t || '(gone)'}`);
        for (const w of state.keys()) if (!now.has(w)) events.push(`${Date.now()} worker ${w}: gone`);
        state.clear();
        for (const [w, t] of now) state.set(w, t);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return events;
}

try {
  for (let i = 0; i < busy; i++) hogs.push(execa('timeout', ['-s', 'KILL', String(runs * 60 + 60), 'sh', '-c', 'while :; do :; done'], { reject: false, stdin: 'ignore' }));
  for (let run = 0; run < runs; run++) {
    const instance = `ntr${run}`;
    const stop = new AbortController();
    const workers = watchWorkers(defaultPaths(instance, 'nginx', env).pidFile, stop.signal);
    const extra = ['--proxy', 'nginx', '--start', ...(template ? ['--template', template] : [])];
    const { r, k, events } = await membershipUnderLoad(tc, env, instance, 25710, extra);
    stop.abort();
    total = { wrk: total.wrk + r.requests, wrkErr: total.wrkErr + r.socketErrors + r.non2xx, own: total.own + k.requests, ownFail: total.ownFail + k.failures.length };
    console.log(`run ${run}: load ${loadavg()[0]!.toFixed(1)}; wrk ${r.requests} requests, non-2xx ${r.non2xx}, socket errors ${r.socketErrors} (${/Socket errors: .*/.exec(r.raw)?.[0] ?? 'none'}); own ${k.requests} requests, ${k.failures.length} failed`);
    if (k.failures.length > 0 || r.socketErrors > 0 || r.non2xx > 0) {
      const lines = [...events.filter((e) => /^\d+ /.test(e)), ...workers, ...k.failures.map((f) => `${f.at} FAIL ${JSON.stringify(f)}`)].sort();
      console.log(lines.map((l) => `  ${l}`).join('\n'));
    }
    await stopWatches();
    const pid = Number(await readFile(defaultPaths(instance, 'nginx', env).pidFile, 'utf8').catch(() => '0'));
    if (pid > 1 && pidAlive(pid)) process.kill(pid, 'SIGQUIT');
    await new Promise((r) => setTimeout(r, 500));
    await tc.cleanup();
  }
  console.log(`total: wrk ${total.wrk} requests, ${total.wrkErr} failed; own ${total.own} requests, ${total.ownFail} failed`);
} finally {
  for (const h of hogs) h.kill('SIGKILL');
  await stopWatches();
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
}
