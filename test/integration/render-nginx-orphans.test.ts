import { execa } from 'execa';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPaths } from '../../src/engine/render.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { elastic } from '../support/cli.js';
import { TestContainers, docker, requireDocker, waitFor } from '../support/docker.js';
import { httpGet } from '../support/render-backends.js';

// Issue 14 item 4 (render): after `kill -9` of the nginx master that `render --start --watch`
// supervises, its orphaned worker keeps the port and the old config. render ends that orphan
// (only it: a foreign nginx of this test on another port survives) and starts nginx again with
// the current config. Real nginx, real containers. Ports 24500 (ours), 24501 (foreign).
const FRONT = 24500;
const FOREIGN = 24501;
const tc = new TestContainers();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;
let foreignMaster = 0;
/** Every nginx pid this test caused: killed (by pid) in afterAll if still there. */
const started = new Set<number>();
const foreignPids = new Set<number>();
const RENDER = ['render', '--proxy', 'nginx', '--service', 'rno', '--bind', `127.0.0.1:${FRONT}`, '--name', `rno-${tc.runId}-*`, '--port', '80', '--start'];

/**
 * Each case starts from our nginx running under a fresh master: what an earlier case left (a
 * failed one may leave orphans) is killed by pid, then a one-shot render starts nginx.
 */
async function freshNginx(): Promise<{ master: number; workers: number[] }> {
  const ours = [...started].filter((p) => !foreignPids.has(p) && pidAlive(p));
  for (const p of ours) process.kill(p, 'SIGKILL');
  await waitFor(() => ours.every((p) => !pidAlive(p)), 'leftover nginx of ours gone');
  const r = await elastic([...RENDER, '--force'], { env }); // an earlier failed case may leave another backend set
  expect(r.exitCode, String(r.stderr)).toBe(0);
  const master = await pidIn(defaultPaths('rno', 'nginx', env).pidFile);
  const workers = (await session(master)).filter((p) => p !== master);
  for (const p of [master, ...workers]) started.add(p);
  expect(workers.length).toBeGreaterThan(0);
  return { master, workers };
}

/** Live processes whose session is `sid` (an nginx master and the workers it forked). */
async function session(sid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp session ...
    if (stat && Number(f[3]) === sid && !'ZX'.includes(f[0]!) && pidAlive(Number(name))) out.push(Number(name));
  }
  return out;
}

const pidIn = async (file: string) => Number((await readFile(file, 'utf8').catch(() => '0')).trim());

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-orphans-'));
  await chmod(dir, 0o755);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir};`).join(' ');
  await writeFile(join(dir, 'foreign.conf'), `worker_processes 1;\npid ${dir}/foreign.pid;\nerror_log ${dir}/foreign.err warn;\nevents { worker_connections 64; }\nhttp { access_log off; ${temp}\n  server { listen 127.0.0.1:${FOREIGN}; location / { return 200 "foreign\\n"; } } }\n`);
  await execa('nginx', ['-c', join(dir, 'foreign.conf')], { stdin: 'ignore' });
  foreignMaster = await waitFor(() => pidIn(join(dir, 'foreign.pid')), 'foreign nginx pid file');
  for (const p of await session(foreignMaster)) (started.add(p), foreignPids.add(p));
});

afterAll(async () => {
  if (watch) {
    watch.kill('SIGTERM');
    await watch;
  }
  const ours = await pidIn(defaultPaths('rno', 'nginx', env).pidFile);
  for (const p of ours > 1 ? await session(ours) : []) started.add(p);
  for (const p of started) if (pidAlive(p)) process.kill(p, 'SIGKILL');
  await waitFor(() => [...started].every((p) => !pidAlive(p)), 'nginx processes of this test gone', 10_000).catch(() => {});
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe('render --proxy nginx --start --watch after kill -9 of the master', () => {
  it('ends the orphaned worker of our nginx, serves the current config under a new master, leaves a foreign nginx alone', async () => {
    const c1 = await tc.run({ name: `rno-${tc.runId}-1` });
    watch = elastic([...RENDER, '--watch', '--wait', '50ms:300ms'], { env, timeout: 120_000 });
    await waitFor(async () => (await httpGet(FRONT)) === c1.id.slice(0, 12), 'the first container served', 30_000, 200);
    const pidFile = defaultPaths('rno', 'nginx', env).pidFile;
    const master = await pidIn(pidFile);
    const workers = (await session(master)).filter((p) => p !== master);
    for (const p of [master, ...workers]) started.add(p);
    expect(workers.length).toBeGreaterThan(0);
    const foreignBefore = (await session(foreignMaster)).sort();

    process.kill(master, 'SIGKILL');
    await waitFor(() => !pidAlive(master), 'the master gone');
    expect(await session(master)).toEqual(workers); // the orphan: alive, still serving
    // The config changes while the orphan serves the old one.
    const c2 = await tc.run({ name: `rno-${tc.runId}-2` });
    await docker.getContainer(c1.id).remove({ force: true });
    const t0 = Date.now();
    // Served again, and only the current backend: 5 requests in a row (the restart may come
    // before discovery saw the change, and a reload follows).
    const current = async () => {
      for (let i = 0; i < 5; i++) if ((await httpGet(FRONT, '/id', 5000)) !== c2.id.slice(0, 12)) return false;
      return true;
    };
    await waitFor(current, 'the current config served', 20_000, 100);
    const ms = Date.now() - t0;
    const next = await pidIn(pidFile);
    for (const p of await session(next)) started.add(p);

    expect(next).not.toBe(master);
    expect(pidAlive(next)).toBe(true);
    expect(await session(master)).toEqual([]); // no orphan of ours left
    expect(ms).toBeLessThan(15_000);
    // The foreign nginx: same master and worker, still serving its own port.
    expect((await session(foreignMaster)).sort()).toEqual(foreignBefore);
    expect(await httpGet(FOREIGN, '/')).toBe('foreign');
  }, 120_000);

  it('a one-shot render --start counts the orphan as ours (not "bind port in use"), ends it and starts nginx', async () => {
    if (watch) {
      watch.kill('SIGTERM');
      await watch;
      watch = null;
    }
    await tc.run({ name: `rno-${tc.runId}-3` });
    const pidFile = defaultPaths('rno', 'nginx', env).pidFile;
    const { master, workers } = await freshNginx();
    process.kill(master, 'SIGKILL');
    await waitFor(() => !pidAlive(master), 'the master gone');
    expect(await session(master)).toEqual(workers);

    const r = await elastic(RENDER, { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stderr)).not.toContain('bind port in use');
    expect(String(r.stderr)).toContain(`nginx master ${master} is gone; ended its orphaned workers (pids ${workers.join(', ')})`);
    const next = await pidIn(pidFile);
    for (const p of await session(next)) started.add(p);
    expect(pidAlive(next) && next !== master).toBe(true);
    expect(await session(master)).toEqual([]);
    expect(await httpGet(FOREIGN, '/')).toBe('foreign');
  }, 60_000);

  it('render stop after kill -9 of the master ends the orphans (it said "not running" and left them serving)', async () => {
    const { master, workers } = await freshNginx();
    process.kill(master, 'SIGKILL');
    await waitFor(() => !pidAlive(master), 'the master gone');

    const r = await elastic(['render', 'stop', '--service', 'rno', '--proxy', 'nginx', '--timeout', '5'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout)).toContain(`nginx (pid ${master}): stopped (master was gone; ended its orphaned workers, pids ${workers.join(', ')})`);
    expect(await session(master)).toEqual([]);
    await expect(httpGet(FRONT)).rejects.toThrow();
    expect(await httpGet(FOREIGN, '/')).toBe('foreign');
    expect((await elastic(['render', 'stop', '--service', 'rno', '--proxy', 'nginx'], { env })).stdout).toMatch(/nginx: not running/);
  }, 60_000);
});
