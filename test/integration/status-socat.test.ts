import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { BIN, elastic } from '../support/cli.js';
import { requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { ownedStateDir } from '../support/owned.js';
import { appCommand, FAST_APP, TEST_TOKEN } from '../support/proxy.js';

/**
 * The README's way to read a status socket, `echo '{"op":"snapshot"}' | socat - UNIX-CONNECT:S`,
 * against every kind this test can start cheaply (real processes, real socat; deploy with 0 replicas). socat half-closes
 * right after the request; a kind whose snapshot is built asynchronously used to answer into a
 * socket Node had already ended. Ports 23000-23019.
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-socat-'));
const stateDir = ownedStateDir('elastic-socat-state-');
const runDir = join(dir, 'run');
const env = { CI: 'true', ELASTIC_RUN_DIR: runDir, ELASTIC_STATE_DIR: stateDir, ELASTIC_EDGE_TOKEN: TEST_TOKEN };
const procs: ResultPromise[] = [];
const errs = new Map<ResultPromise, LineReader>();
const DEPLOY = `socat${process.pid}`;

function start(args: string[]): { proc: ResultPromise; out: LineReader; err: LineReader } {
  const proc = execa(process.execPath, [BIN, ...args], { reject: false, stdin: 'ignore', env });
  procs.push(proc);
  const err = new LineReader(proc.stderr!);
  errs.set(proc, err);
  return { proc, out: new LineReader(proc.stdout!), err };
}

const socket = (kind: string, name: string) => join(runDir, `${kind}.${name}.sock`);

async function socat(path: string, input: string): Promise<string> {
  const r = await execa('socat', ['-', `UNIX-CONNECT:${path}`], { input, reject: false, timeout: 10_000 });
  expect(r.exitCode, String(r.stderr)).toBe(0);
  return String(r.stdout);
}

const runConfig = join(dir, 'elastic.yaml');

beforeAll(async () => {
  await requireDocker();
  writeFileSync(
    runConfig,
    `version: 1
name: socat
sources:
  legacy: { static: { backends: ["198.18.0.10:80"] } }
services:
  - name: web
    sources: [legacy]
    haproxy: { port: 23001 }
`,
  );
  start(['discover', '--watch', '--backend', '198.18.0.10:80']);
  start(['render', '--watch', '--start', '--backend', '198.18.0.10:80', '--service', 'sweb', '--bind', '23002', '--instance-name', 'socat']);
  start(['map-image', '23003', `socat-none-${process.pid}:1`, '80', '--backend', '198.18.0.10:80', '--watch', '--dataplane', 'nft']);
  start(['run', '-c', runConfig]);
  const edge = start(['proxy', 'edge', '--json', '-p', '23004', '--name', 'socat']);
  const ready = await edge.out.json<{ type: string; nodePort: number }>((l) => l.type === 'listening', 'the edge listening line', 30_000);
  start(['proxy', 'node', '--edge', `127.0.0.1:${ready.nodePort}`, '--route', 'default', '--', ...appCommand(FAST_APP)]);
  start(['deploy', TEST_IMAGE, '--name', DEPLOY, '-r', '0', '--watch']); // no container: cheap
}, 60_000);

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null && p.pid) process.kill(p.pid, 'SIGTERM');
  await Promise.all(procs.map((p) => p.catch(() => {})));
  for (const name of ['socat', 'run-socat']) {
    const d = defaultPaths(name, 'haproxy', env);
    await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  }
  await elastic(['map-image', 'stop', '--all'], { env });
  // A proxy the daemon started while it was being stopped (seen once under load) is still ours:
  // its command line names this test's own directories. End it by pid.
  for (const pid of (await execa('pgrep', ['-f', `haproxy .*(${dir}|${stateDir})`], { reject: false })).stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
}, 60_000);

describe('status sockets answer a client that half-closes (socat)', () => {
  const kinds: Array<[string, () => string]> = [
    ['discover', () => socket('discover', `default-${procs[0]!.pid}`)],
    ['render', () => socket('render', 'socat')],
    ['map-image', () => socket('map-image', 'tcp-23003')],
    ['run', () => socket('run', 'socat')],
    ['edge', () => socket('edge', 'socat')],
    ['node', () => socket('node', `default-${procs[5]!.pid}`)],
    ['deploy', () => socket('deploy', DEPLOY)],
  ];

  it.each(kinds)('%s: a snapshot for `echo ... | socat -`', async (kind, path) => {
    onTestFailed(() => {
      for (const p of procs) console.error(`${p.spawnargs.slice(2, 4).join(' ')} (pid ${p.pid}, exit ${p.exitCode}): ${errs.get(p)?.lines.slice(-5).join(' | ') ?? ''}`);
    });
    await waitFor(() => existsSync(path()), `the ${kind} status socket ${path()}`, 30_000);
    const out = await socat(path(), '{"op":"snapshot"}\n');
    const lines = out.split('\n').filter(Boolean);
    expect(lines, `answer of ${kind}: ${out}`).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ v: 1, kind });
  });

  it('a request without a final newline is still answered; garbage gets an error, not silence', async () => {
    const path = socket('render', 'socat');
    expect(JSON.parse(await socat(path, '{"op":"snapshot"}'))).toMatchObject({ kind: 'render' });
    expect(JSON.parse(await socat(path, 'null\n'))).toEqual({ ok: false, error: 'bad request' });
    expect(JSON.parse(await socat(path, '{"op":"nope"}'))).toMatchObject({ ok: false, error: 'unknown op nope' });
    // The process is still serving after all that.
    expect(JSON.parse(await socat(path, '{"op":"snapshot"}\n'))).toMatchObject({ kind: 'render' });
  });
});
