import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultPaths } from '../../src/engine/render.js';
import { elastic } from './cli.js';
import { type TestContainers, waitFor } from './docker.js';
import { keepAliveLoad } from './keepalive-client.js';
import { httpGet, wrk } from './render-backends.js';

/**
 * Membership changes under keep-alive load, shared by test/integration/render-membership.test.ts
 * and bench/render/membership.ts: `render --watch` over containers named <instance>-<run>-*,
 * wrk (10 connections) and a keep-alive client of our own (4) while 3 containers are added one by
 * one and then removed one by one with `docker rm -f`. The load runs until 1 s after the last
 * removal left the config (so every change happens under load, however slow the machine), at
 * most `seconds` (a change may take 15 s to be served on a host at load 20: VCL compiles); `underLoad` says whether all changes were done before that bound.
 */
const watches: Array<ReturnType<typeof elastic>> = [];

export async function stopWatches(): Promise<void> {
  for (const w of watches.splice(0)) {
    w.kill('SIGTERM');
    await w;
  }
}

/** Start 2 containers and `render --watch`, then add 3 and remove them under wrk. */
export async function membershipUnderLoad(tc: TestContainers, env: NodeJS.ProcessEnv, instance: string, port: number, extra: string[], wait = '100ms:500ms', seconds = 150) {
  const prefix = `${instance}-${tc.runId}`;
  for (let i = 0; i < 2; i++) await tc.run({ name: `${prefix}-base${i}` });
  const w = elastic(['render', '--service', instance, '--bind', `127.0.0.1:${port}`, '--name', `${prefix}-*`, '--port', '80', '--watch', '--wait', wait, '--lb-check-interval', '500', ...extra], { env, timeout: 120_000 });
  watches.push(w);
  let stderr = '';
  w.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const served = async (n: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add(await httpGet(port).catch(() => ''));
    return seen;
  };
  await waitFor(async () => (await served(6)).size === 2 && !(await served(6)).has(''), `${instance}: both base containers served`, 30_000, 200);
  const stop = new AbortController();
  const loadEnd = Date.now() + seconds * 1000;
  const load = wrk(port, seconds, 10, '/id', stop.signal);
  const own = keepAliveLoad(port, seconds, 4, '/id', 2_000_000, stop.signal);
  const events: string[] = [];
  const mark = (e: string) => events.push(`${Date.now()} ${e}`);
  await new Promise((r) => setTimeout(r, 1000));
  const added = [];
  for (let i = 0; i < 3; i++) {
    mark(`add ${i}`);
    const c = await tc.run({ name: `${prefix}-new${i}` });
    added.push(c);
    const host = c.id.slice(0, 12);
    await waitFor(async () => (await served(12)).has(host), `${instance}: new container ${i} served`, 30_000, 100);
    await new Promise((r) => setTimeout(r, 700));
  }
  const proxy = (extra[extra.indexOf('--proxy') + 1] ?? 'haproxy') as 'haproxy' | 'nginx' | 'varnish';
  const output = defaultPaths(instance, extra.includes('--proxy') ? proxy : 'haproxy', env).output;
  const removedIps: string[] = [];
  for (const c of added) {
    const ip = await tc.ip(c);
    removedIps.push(ip);
    mark(`remove ${ip}`);
    await c.remove({ force: true });
    await waitFor(async () => !(await readFile(output, 'utf8')).includes(`${ip}`), `${instance}: ${ip} gone from the config`, 30_000, 100);
    await new Promise((r) => setTimeout(r, 700));
  }
  const underLoad = Date.now() + 300 < loadEnd;
  await new Promise((r) => setTimeout(r, 300));
  stop.abort();
  const r = await load;
  const k = await own;
  const errorLog = await readFile(join(env.ELASTIC_RUN_DIR!, `render-${instance}`, 'nginx-error.log'), 'utf8').catch(() => '');
  // Responses a removed container was killed in the middle of (docker rm -f is SIGKILL): nginx had
  // passed on the headers, so no proxy can retry it; nginx logs each (nginx only: `cut` is 0 otherwise).
  const cut = errorLog.split('\n').filter((l) => l.includes('upstream prematurely closed connection while reading upstream') && removedIps.some((ip) => l.includes(`//${ip}:`))).length;
  return { r, k, stderr, underLoad, cut, events: [...events, ...errorLog.split('\n').filter((l) => !l.includes('no live upstreams') && !l.includes('temporarily disabled')).slice(-30)] };
}

