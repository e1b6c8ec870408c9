import { execa } from 'execa';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { defaultPaths } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { TestContainers, requireDocker, waitFor } from '../support/docker.js';
import { httpGet, waitPort, wrk } from '../support/render-backends.js';
import { keepAliveLoad } from '../support/keepalive-client.js';

// Issue 14 item 1: membership changes under a keep-alive client (wrk, 10 connections, bounded in
// time) through `render --watch` with real nginx and Varnish and real containers: 3 added one
// by one, then removed one by one with `docker rm -f`: 0 failed requests. Ports 22500 (nginx),
// 22510 (varnish, admin 22511).
const tc = new TestContainers();
let dir: string;
let env: NodeJS.ProcessEnv;
const watches: Array<ReturnType<typeof elastic>> = [];
let varnishPid = 0;

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-mship-'));
  await chmod(dir, 0o755); // nginx workers (nobody) stat the closing flag; varnishd reads the VCL
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
});

afterAll(async () => {
  for (const w of watches) {
    w.kill('SIGTERM');
    await w;
  }
  const pid = Number(await readFile(defaultPaths('mng', 'nginx', env).pidFile, 'utf8').catch(() => '0'));
  if (pid > 1 && pidAlive(pid)) process.kill(pid, 'SIGQUIT');
  if (varnishPid > 1 && pidAlive(varnishPid)) process.kill(varnishPid, 'SIGTERM');
  await waitFor(() => !(pid > 1 && pidAlive(pid)) && !(varnishPid > 1 && pidAlive(varnishPid)), 'nginx and varnishd stopped', 10_000).catch(() => {});
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/** Start 2 containers and `render --watch`, then add 3 and remove them under wrk. */
async function membershipUnderLoad(instance: string, port: number, extra: string[], wait = '100ms:500ms') {
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
  const load = wrk(port, 20, 10);
  const own = keepAliveLoad(port, 20, 4);
  const events: string[] = [];
  const mark = (e: string) => events.push(`${Date.now()} ${e}`);
  await new Promise((r) => setTimeout(r, 1000));
  const added = [];
  for (let i = 0; i < 3; i++) {
    mark(`add ${i}`);
    const c = await tc.run({ name: `${prefix}-new${i}` });
    added.push(c);
    const host = c.id.slice(0, 12);
    await waitFor(async () => (await served(12)).has(host), `${instance}: new container ${i} served`, 15_000, 100);
    await new Promise((r) => setTimeout(r, 700));
  }
  const output = defaultPaths(instance, 'nginx', env).output.replace(/nginx\.conf$/, extra.includes('varnish') ? 'default.vcl' : 'nginx.conf');
  for (const c of added) {
    const ip = await tc.ip(c);
    mark(`remove ${ip}`);
    await c.remove({ force: true });
    await waitFor(async () => !(await readFile(output, 'utf8')).includes(`${ip}`), `${instance}: ${ip} gone from the config`, 15_000, 100);
    await new Promise((r) => setTimeout(r, 700));
  }
  const r = await load;
  const k = await own;
  const errorLog = await readFile(join(env.ELASTIC_RUN_DIR!, `render-${instance}`, 'nginx-error.log'), 'utf8').catch(() => '');
  return { r, k, stderr, events: [...events, ...errorLog.split('\n').filter((l) => !l.includes('no live upstreams')).slice(-8)] };
}

describe('membership changes under keep-alive load', () => {
  it('nginx: 3 containers added and removed, 0 failed requests', async () => {
    const { r, k, stderr, events } = await membershipUnderLoad('mng', 22500, ['--proxy', 'nginx', '--start']);
    expect(stderr).not.toMatch(/cannot search/);
    expect(r.requests).toBeGreaterThan(1000);
    expect(k.failures, JSON.stringify({ events, failures: k.failures.slice(0, 5), n: k.failures.length })).toEqual([]);
    expect({ non2xx: r.non2xx, socketErrors: r.socketErrors }, r.raw).toEqual({ non2xx: 0, socketErrors: 0 });
  }, 120_000);

  it('Varnish: 3 containers added and removed (docker rm -f), 0 failed requests', async () => {
    const work = join(dir, 'varnish');
    const init = join(dir, 'init.vcl');
    await writeFile(init, 'vcl 4.1;\nbackend default none;\n');
    await execa('varnishd', ['-a', '127.0.0.1:22510', '-T', '127.0.0.1:22511', '-f', init, '-n', work, '-P', join(dir, 'varnishd.pid'), '-s', 'malloc,16m'], { stdin: 'ignore' });
    varnishPid = Number(await readFile(join(dir, 'varnishd.pid'), 'utf8'));
    await waitPort(22510);
    const { r, k, events } = await membershipUnderLoad('mvarnish', 22510, ['--proxy', 'varnish', '--varnish-name', work, '--lb-check', 'http:/id'], '1500ms:3s');
    // (a slow --wait leaves removed containers in the VCL for 1.5 s: fetches to them must be retried)
    expect(r.requests).toBeGreaterThan(1000);
    expect(k.failures, JSON.stringify({ events, failures: k.failures.slice(0, 5), n: k.failures.length })).toEqual([]);
    expect({ non2xx: r.non2xx, socketErrors: r.socketErrors }, r.raw).toEqual({ non2xx: 0, socketErrors: 0 });
  }, 120_000);
});
