import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BIN, elastic } from '../support/cli.js';
import { requireDocker, TestContainers, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { createClientNamespace, type ClientNamespace } from '../support/netns.js';
import { ownedStateDir } from '../support/owned.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { parseExposition } from '../fixtures/run/exposition.js';

/**
 * `elastic run` must be trustworthy (issue 12): the built binary against the real dockerd,
 * HAProxy and kernel DNAT. Each test failed before its fix. Ports 21000-21019.
 */
const tc = new TestContainers();
const stateDir = ownedStateDir('run-trust-state-');
const runDir = mkdtempSync(join(tmpdir(), 'run-trust-run-'));
const dir = mkdtempSync(join(tmpdir(), 'run-trust-cfg-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const file = join(dir, 'elastic.yaml');
const P = { web: 21001, dnat: 21002, hc: 21003, metrics: 21004, taken: 21005, once: 21006, static: 21007, nobody: 21008 };
const NAME = 'trust';
const children: ChildProcess[] = [];
const web: Docker.Container[] = [];
const hc: Docker.Container[] = [];
let ns: ClientNamespace;
let held: Server | null = null;

interface Opts {
  balance?: string;
  mapImage?: boolean;
  metricsPort?: number;
  /** health: of the hc service (default: fast checks). */
  health?: string;
}
const config = (o: Opts = {}) => `version: 1
name: ${NAME}
sources:
  web: { docker: { label: ["elastic.test=${tc.runId}", "role=web"], port: 80 } }
  hc: { docker: { label: ["elastic.test=${tc.runId}", "role=hc"], port: 80 } }
services:
  - name: web
    sources: [web]
    guardrails: { min_backends: 1, max_change: 50 }
    haproxy: { port: ${P.web}, mode: http, balance: ${o.balance ?? 'roundrobin'}, lb_check: none }
${o.mapImage === false ? '' : `    map_image: { port: ${P.dnat}, dataplane: nft }\n`}  - name: hc
    sources: [hc]
    health: ${o.health ?? '{ check: "http:/id", interval_ms: 300, rise: 2 }'}
    haproxy: { port: ${P.hc}, mode: http, lb_check: none }
sync: { min_interval_ms: 50 }
metrics:
  prometheus: { port: ${o.metricsPort ?? P.metrics} }
`;

function startDaemon(): { child: ChildProcess; err: LineReader } {
  const child = spawn(process.execPath, [BIN, 'run', '-c', file, '--log-json'], { env: { ...process.env, ...env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return { child, err: new LineReader(child.stderr!) };
}

const get = async (port: number) => {
  const res = await fetch(`http://127.0.0.1:${port}/id`, { signal: AbortSignal.timeout(3000), headers: { connection: 'close' } });
  return (await res.text()).trim();
};
async function answering(port: number, n = 12): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await get(port).catch(() => 'ERR'));
  return seen;
}
const viaDnat = async (n = 12) => new Set((await ns.httpSpread(`http://${ns.hostAddress}:${P.dnat}/id`, n, { concurrency: 4, timeoutMs: 1500 })).keys());
const idsOf = (list: Docker.Container[]) => new Set(list.map((c) => c.id.slice(0, 12)));
const same = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((x) => b.has(x));
const statusOf = () => requestStatus<Snapshot>(join(runDir, `run.${NAME}.sock`));
const metrics = async (port = P.metrics) => parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text()).samples;
const stateFile = join(stateDir, `run-${NAME}.json`);
async function nftRules(): Promise<number> {
  const r = await execa('nft', ['list', 'table', 'ip', namespaceFor(stateDir).nftTable], { reject: false });
  return r.stdout.split('\n').filter((l) => l.includes(`tcp-${P.dnat}`)).length;
}

beforeAll(async () => {
  await requireDocker();
  ns = await createClientNamespace({ name: 'run-trust', prefix: '198.19.21', index: 0 });
  for (let i = 0; i < 4; i++) web.push(await tc.run({ name: `trust-${tc.runId}-w${i}`, labels: { role: 'web' } }));
  for (let i = 0; i < 3; i++) hc.push(await tc.run({ name: `trust-${tc.runId}-h${i}`, labels: { role: 'hc' } }));
  writeFileSync(file, config());
});

afterAll(async () => {
  held?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) await Promise.resolve().then(() => process.kill(c.pid!, 'SIGKILL')).catch(() => {});
  for (const inst of [`run-${NAME}`, 'run-trust-once', 'run-trust-static']) {
    const d = defaultPaths(inst, 'haproxy', env);
    await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  }
  await elastic(['map-image', 'stop', '--all'], { env });
  await tc.cleanup();
  await ns?.cleanup();
  for (const p of [stateDir, runDir, dir]) rmSync(p, { recursive: true, force: true });
});

describe('elastic run: trust', () => {
  let daemon: { child: ChildProcess; err: LineReader };
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && daemon) process.stderr.write(`daemon stderr:\n${daemon.err.lines.slice(-40).join('\n')}\n`);
  });

  it('starts over a damaged state file (moved aside, said so), tightens loose permissions, removes dead temp files', async () => {
    writeFileSync(stateFile, '{"v":1,"accepted":{}}\n}trailing garbage');
    const deadTemp = join(stateDir, `.run-${NAME}.json.999999999.1700000000000.tmp`);
    writeFileSync(deadTemp, '');
    chmodSync(stateDir, 0o755);
    writeFileSync(join(stateDir, 'deploy-secret.json'), '{"env":{"DB_PASSWORD":"x"}}');
    chmodSync(join(stateDir, 'deploy-secret.json'), 0o644);
    daemon = startDaemon();
    await daemon.err.next((l) => l.includes('"msg":"running"'), 'daemon running', 30_000);
    const log = daemon.err.lines.join('\n');
    expect(log).toMatch(/not valid JSON: moved aside to [^"]*run-trust\.json\.corrupt-/);
    expect(log).toContain('permissions too open');
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(stateDir, 'deploy-secret.json')).mode & 0o777).toBe(0o600);
    expect(existsSync(deadTemp)).toBe(false);
    await waitFor(async () => same(await answering(P.web), idsOf(web)), 'HAProxy serves the web containers', 30_000, 200);
    await waitFor(async () => same(await viaDnat(), idsOf(web)), 'DNAT serves the web containers', 30_000, 200);
    await waitFor(async () => same(await answering(P.hc), idsOf(hc)), 'HAProxy serves the health-checked containers', 30_000, 200);
    expect(statSync(stateFile).mode & 0o777).toBe(0o600);
  });

  it('no refusal is logged or counted at start while health checks decide; every counter exists from the start', async () => {
    expect(daemon.err.lines.filter((l) => l.includes('refused')).join('\n')).toBe('');
    const m = await metrics();
    for (const rule of ['min-backends', 'max-change']) expect(m.get(`elastic_refusals_total{service="hc",rule="${rule}"}`)).toBe(0);
    for (const result of ['applied', 'unchanged', 'refused', 'failed']) expect(m.get(`elastic_config_reloads_total{result="${result}"}`)).toBe(0);
    expect(m.get('elastic_syncs_total{applier="haproxy",result="error"}')).toBe(0);
    expect(m.get('elastic_source_errors_total{source="web"}')).toBe(0);
    expect(m.get('elastic_last_successful_sync_timestamp_seconds{applier="haproxy"}')).toBeGreaterThan(Date.now() / 1000 - 120);
    expect(m.get('elastic_process_resident_memory_bytes')).toBeGreaterThan(10e6);
    expect(m.get('elastic_process_open_fds')).toBeGreaterThan(5);
    expect(m.get('elastic_process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(m.get('elastic_event_loop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect([...m.keys()].some((k) => k.startsWith('elastic_build_info{version="'))).toBe(true);
    const hcAddr = await tc.ip(hc[0]!);
    expect(m.get(`elastic_backend_up{service="hc",backend="${hcAddr}:80",health="healthy"}`)).toBe(1);
  });

  it('the state file stays whole over many reloads; the status hash follows each one; health is carried (HAProxy never shrinks)', async () => {
    for (let i = 0; i < 6; i++) {
      const from = daemon.err.lines.length;
      writeFileSync(file, config({ balance: i % 2 ? 'roundrobin' : 'leastconn' }));
      process.kill(daemon.child.pid!, 'SIGHUP');
      await daemon.err.next((l) => l.includes('config reloaded'), `reload ${i}`, 15_000, from);
      // Right after the reload the health-checked service still has every backend: served by
      // HAProxy, and accepted by the new pipeline (health verdicts carried, not restarted).
      const t0 = Date.now();
      while (Date.now() - t0 < 1500) {
        expect(((await statusOf()).services.hc as { backends: unknown[] }).backends, `hc accepted right after reload ${i}`).toHaveLength(hc.length);
        expect(await answering(P.hc, 6), `hc served right after reload ${i}`).toEqual(idsOf(hc));
      }
      await waitFor(async () => readFileSync(defaultPaths(`run-${NAME}`, 'haproxy', env).output, 'utf8').includes(i % 2 ? 'balance roundrobin' : 'balance leastconn'), 'the new balance reaches HAProxy', 10_000, 100);
      expect(() => JSON.parse(readFileSync(stateFile, 'utf8'))).not.toThrow();
      const snap = await statusOf();
      const hash = /"hash":"([0-9a-f]+)"/.exec(daemon.err.lines.slice(from).find((l) => l.includes('config reloaded'))!)![1];
      expect((snap.config as { hash: string }).hash).toBe(hash);
    }
    expect(daemon.err.lines.filter((l) => l.includes('state not saved'))).toEqual([]);
    // Each reload replaces the appliers: the old ones' nft sessions end (one session, not one per reload).
    const nft = await execa('pgrep', ['-P', String(daemon.child.pid), '-x', 'nft'], { reject: false });
    expect(nft.stdout.split('\n').filter(Boolean).length).toBeLessThanOrEqual(1);
    expect(readdirSync(stateDir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('a reload that cannot start (metrics port held by another process) fails whole: logged, counted, old config keeps serving and following', async () => {
    held = createServer();
    await new Promise<void>((r) => held!.listen(P.taken, '127.0.0.1', () => r()));
    const hash = ((await statusOf()).config as { hash: string }).hash;
    writeFileSync(file, config({ metricsPort: P.taken }));
    for (let round = 1; round <= 2; round++) {
      const from = daemon.err.lines.length;
      process.kill(daemon.child.pid!, 'SIGHUP');
      const line = await daemon.err.next((l) => l.includes('config reload failed'), `reload failure ${round} logged`, 15_000, from);
      expect(line).toContain('EADDRINUSE');
      expect(((await statusOf()).config as { hash: string }).hash).toBe(hash);
      expect((await metrics()).get('elastic_config_reloads_total{result="failed"}')).toBe(round);
    }
    expect(daemon.child.exitCode).toBeNull();
    // Still following: a stopped container leaves HAProxy and the DNAT map.
    const gone = web.pop()!;
    await gone.remove({ force: true });
    await waitFor(async () => same(await answering(P.web), idsOf(web)), 'HAProxy drops the removed container', 20_000, 200);
    await waitFor(async () => same(await viaDnat(), idsOf(web)), 'DNAT drops the removed container', 20_000, 200);
    held.close();
    held = null;
    writeFileSync(file, config());
  });

  it('guardrails: containers that stop are intended removals (HAProxy and DNAT agree); a refusal never blocks additions', async () => {
    // 3 web containers now: stop 2 of them (67% > max_change 50%) -> gone, so applied.
    const stopped = web.splice(0, 2);
    await Promise.all(stopped.map((c) => c.kill()));
    await waitFor(async () => same(await answering(P.web, 6), idsOf(web)), 'HAProxy serves only the live container', 20_000, 200);
    await waitFor(async () => same(await viaDnat(8), idsOf(web)), 'DNAT serves only the live container', 20_000, 200);
    expect(daemon.err.lines.filter((l) => l.includes('refused')).join('\n')).toBe('');
    for (let i = 0; i < 2; i++) web.push(await tc.run({ name: `trust-${tc.runId}-w${4 + i}`, labels: { role: 'web' } }));
    await waitFor(async () => same(await answering(P.web), idsOf(web)), 'HAProxy follows the additions', 20_000, 200);
    await waitFor(async () => same(await viaDnat(), idsOf(web)), 'DNAT follows the additions', 20_000, 200);
  });

  it('the last map_image mapping removed from the config leaves the kernel (SIGHUP)', async () => {
    expect(await nftRules()).toBeGreaterThan(0);
    const from = daemon.err.lines.length;
    writeFileSync(file, config({ mapImage: false }));
    process.kill(daemon.child.pid!, 'SIGHUP');
    await daemon.err.next((l) => l.includes('config reloaded'), 'reload without map_image', 15_000, from);
    await waitFor(async () => (await nftRules()) === 0, 'the mapping leaves the kernel', 15_000, 200);
    expect(same(await answering(P.web), idsOf(web))).toBe(true);
  });

  it('a restart starts health checks from what was serving: no wait for slow verdicts, HAProxy never shrinks', async () => {
    process.kill(daemon.child.pid!, 'SIGKILL');
    await new Promise((r) => daemon.child.once('exit', r));
    // Checks that need 30 s for a first verdict: without starting from what served, nothing for 30 s
    // (so the 10 s the acceptance may take on a loaded CI machine still tells the two apart).
    writeFileSync(file, config({ mapImage: false, health: '{ check: "http:/id", interval_ms: 1000, rise: 30 }' }));
    daemon = startDaemon();
    await daemon.err.next((l) => l.includes('"msg":"running"'), 'daemon running again', 30_000);
    const t0 = Date.now();
    await waitFor(async () => ((await statusOf()).services.hc as { backends: unknown[] }).backends.length === hc.length, 'hc accepted from what was serving', 10_000, 50);
    while (Date.now() - t0 < 4000) expect(await answering(P.hc, 6)).toEqual(idsOf(hc));
    expect(daemon.err.lines.filter((l) => l.includes('refused'))).toEqual([]);
    process.kill(daemon.child.pid!, 'SIGTERM');
    await new Promise((r) => daemon.child.once('exit', r));
  });

  it('--once with health checks at their defaults waits for the verdicts (bounded by --once-timeout)', async () => {
    const once = join(dir, 'once.yaml');
    writeFileSync(once, `version: 1
name: trust-once
sources:
  hc: { docker: { label: ["elastic.test=${tc.runId}", "role=hc"], port: 80 } }
services:
  - name: hc
    sources: [hc]
    health: { check: "http:/id" }
    haproxy: { port: ${P.once}, mode: http }
`);
    const r = await elastic(['run', '-c', once, '--once', '--json', '--once-timeout', '30'], { env, timeout: 60_000 });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stderr)).not.toContain('refused');
    expect(same(await answering(P.once), idsOf(hc))).toBe(true);
  });
});

describe('elastic run: saying the right thing', () => {
  it('a static-only source is listed once: no "event stream ended" over and over', async () => {
    const f = join(dir, 'static.yaml');
    writeFileSync(f, `version: 1
name: trust-static
sources:
  fixed: { static: { backends: ["127.0.0.1:${P.nobody}"] } }
services:
  - { name: fixed, sources: [fixed], haproxy: { port: ${P.static}, lb_check: none } }
`);
    const child = spawn(process.execPath, [BIN, 'run', '-c', f, '--log-json'], { env: { ...process.env, ...env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const err = new LineReader(child.stderr!);
    await err.next((l) => l.includes('applied: start'), 'HAProxy started for the static service', 30_000);
    await new Promise((r) => setTimeout(r, 3000));
    expect(err.lines.filter((l) => l.includes('event stream ended'))).toEqual([]);
    process.kill(child.pid!, 'SIGTERM');
    await new Promise((r) => child.once('exit', r));
  });

  it('--check --json lists every problem; --check --once says what is wrong in one line', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\nsources:\n  a: { static: { backends: ["198.18.0.1:80"] } }\nservices:\n  - name: s\n    sources: [nope]\n    haproxy: { port: 99999 }\n  - name: t\n    sources: [a]\n    haproxy: { port: 0 }\n');
    const r = await elastic(['run', '-c', bad, '--check', '--json'], { env });
    expect(r.exitCode).toBe(5);
    const out = JSON.parse(String(r.stdout)) as { error: { problems: string[] } };
    expect(out.error.problems).toEqual([
      `${bad}:6: services[0].sources[0]: no source named "nope" (define it under sources:)`,
      `${bad}:7: services[0].haproxy.port: must be 1-65535`,
      `${bad}:10: services[1].haproxy.port: must be 1-65535`,
    ]);
    const both = await elastic(['run', '-c', bad, '--check', '--once'], { env });
    expect(both.exitCode).toBe(2);
    expect(String(both.stderr).trim()).toBe('error: --check and --once cannot be used together. try: --check only validates the config; --once validates it and syncs once');
  });
});
