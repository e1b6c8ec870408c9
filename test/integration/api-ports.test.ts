import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CreateLoadBalancerCommand, CreateLoadBalancerListenersCommand, DescribeLoadBalancersCommand, ElasticLoadBalancingClient, RegisterInstancesWithLoadBalancerCommand } from '@aws-sdk/client-elastic-load-balancing';
import { BIN } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { ownedStateDir } from '../support/owned.js';
import { requestLoop, startForeignHaproxy, type ForeignHaproxy } from '../support/ports.js';
import { LocalBackends, httpGet } from '../support/render-backends.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { ACTIONS } from '../../src/engine/run/elb/actions.js';
import { defaultPaths } from '../../src/engine/render.js';

/**
 * Issue 12 finding 3 and issue 13 item 1, with a real `elastic run`, a real HAProxy, a port held
 * by a plain listener and one served by another HAProxy: a bind that is not ours is refused up
 * front (the API) or before any reload (SIGHUP), and no frontend that serves ever stops.
 */
const P = { web: 21510, foreignBackend: 21511, held: 21512, foreign: 21513, haproxy: 21514, api: 21515, metrics: 21516, elbOk: 21517, elbOk2: 21518 };
const stateDir = ownedStateDir('api-ports-state-');
const runDir = mkdtempSync(join(tmpdir(), 'api-ports-run-'));
const dir = mkdtempSync(join(tmpdir(), 'api-ports-cfg-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const file = join(dir, 'elastic.yaml');
const KEY = { accessKeyId: 'AKIDAPIPORTS000001', secretAccessKey: 'api-ports-secret-0123456789abcdefgh' };
const backends = new LocalBackends();
let held: Server;
let foreign: ForeignHaproxy;
let daemon: { child: ChildProcess; err: LineReader };

const config = (extra = '') => `version: 1
name: apiports
sources:
  st: { static: { backends: ["127.0.0.1:${P.web}"] } }
services:
  - name: web
    sources: [st]
    haproxy: { port: ${P.haproxy}, mode: http }
${extra}sync: { min_interval_ms: 50 }
metrics:
  prometheus: { port: ${P.metrics} }
api:
  port: ${P.api}
  keys: [{ access_key_id: ${KEY.accessKeyId}, secret: ${KEY.secretAccessKey} }]
  allow_targets: ["127.0.0.1/32"]
`;
const elb = () => new ElasticLoadBalancingClient({ endpoint: `http://127.0.0.1:${P.api}`, region: 'us-east-1', credentials: KEY, maxAttempts: 1 });
const errorOf = (p: Promise<unknown>) => p.then(() => ({ name: 'ok', message: '' }), (e: { name: string; message: string }) => ({ name: e.name, message: e.message }));
const listener = (port: number) => ({ Protocol: 'HTTP', LoadBalancerPort: port, InstanceProtocol: 'HTTP', InstancePort: 80 });

beforeAll(async () => {
  await backends.start([P.web, P.foreignBackend]);
  held = createServer((s) => s.end('held\n'));
  await new Promise<void>((r) => held.listen(P.held, '127.0.0.1', r));
  foreign = await startForeignHaproxy(dir, P.foreign, P.foreignBackend);
  writeFileSync(file, config());
  const child = spawn(process.execPath, [BIN, 'run', '-c', file, '--log-json'], { env: { ...process.env, ...env, CI: 'true' }, stdio: ['ignore', 'ignore', 'pipe'] });
  daemon = { child, err: new LineReader(child.stderr!) };
  await waitFor(async () => (await httpGet(P.haproxy)) === `b${P.web}`, 'the daemon serves web', 20_000, 100);
});

afterAll(async () => {
  if (daemon?.child.exitCode === null) {
    const from = daemon.err.lines.length;
    const exited = new Promise((r) => daemon.child.once('exit', r));
    daemon.child.kill('SIGTERM');
    const t0 = Date.now();
    if ((await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 20_000))])) === 'timeout') {
      process.stderr.write(`daemon did not stop in 20 s:\n${daemon.err.lines.slice(from).join('\n')}\n`);
      daemon.child.kill('SIGKILL');
      await exited;
    } else process.stderr.write(`daemon stopped in ${Date.now() - t0} ms\n`);
  }
  const d = defaultPaths('run-apiports', 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  await foreign?.stop();
  await new Promise((r) => held?.close(r));
  await backends.stop();
  for (const p of [stateDir, runDir, dir]) rmSync(p, { recursive: true, force: true });
});

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') process.stderr.write(`daemon stderr:\n${daemon.err.lines.filter((l) => !l.includes('event stream')).slice(-20).join('\n')}\n`);
});

describe('binds another process serves are refused; nothing that serves stops', () => {
  it('the ELB API refuses a LoadBalancerPort held by a plain listener or another HAProxy (InvalidConfigurationRequest); web serves every request throughout; the other HAProxy keeps all its traffic', async () => {
    const stop = { stopped: false };
    const web = requestLoop(`http://127.0.0.1:${P.haproxy}/id`, { ms: 20_000, max: 3000 }, stop);
    const plain = await errorOf(elb().send(new CreateLoadBalancerCommand({ LoadBalancerName: 'held', Listeners: [listener(P.held)] })));
    expect(plain.name).toBe('InvalidConfigurationRequestException');
    expect(plain.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${P.held} is already served by pid ${process.pid} \\(`));
    const other = await errorOf(elb().send(new CreateLoadBalancerCommand({ LoadBalancerName: 'stealer', Listeners: [listener(P.foreign)] })));
    expect(other.name).toBe('InvalidConfigurationRequestException');
    expect(other.message).toContain(`already served by pid`);
    expect(other.message).toContain('(haproxy)');
    // A free port is accepted, and a second listener next to one our HAProxy already serves too.
    await elb().send(new CreateLoadBalancerCommand({ LoadBalancerName: 'ok', Listeners: [listener(P.elbOk)] }));
    await waitFor(async () => (await fetch(`http://127.0.0.1:${P.elbOk}/`, { signal: AbortSignal.timeout(1000) })).status === 503, 'our HAProxy binds the free port (503: no instances yet)', 10_000, 100);
    await elb().send(new CreateLoadBalancerListenersCommand({ LoadBalancerName: 'ok', Listeners: [listener(P.elbOk2)] }));
    const onExisting = await errorOf(elb().send(new CreateLoadBalancerListenersCommand({ LoadBalancerName: 'ok', Listeners: [listener(P.foreign)] })));
    expect(onExisting.name).toBe('InvalidConfigurationRequestException');
    const lbs = (await elb().send(new DescribeLoadBalancersCommand({}))).LoadBalancerDescriptions ?? [];
    expect(lbs.map((l) => [l.LoadBalancerName, l.ListenerDescriptions?.map((d) => d.Listener?.LoadBalancerPort)])).toEqual([['ok', [P.elbOk, P.elbOk2]]]);
    // Nothing stolen: every request to the other HAProxy reaches its own backend.
    const theirs = await requestLoop(`http://127.0.0.1:${P.foreign}/id`, { ms: 10_000, max: 40, pauseMs: 0 });
    expect(theirs.answers).toEqual(new Map([[`b${P.foreignBackend}`, 40]]));
    await new Promise((r) => setTimeout(r, 3000)); // a retry of a failed apply would land here
    stop.stopped = true;
    const r = await web;
    expect(r.failures, `web failed ${r.failed} of ${r.ok + r.failed}`).toEqual([]);
    expect(r.ok).toBeGreaterThan(50);
  });

  it('RegisterInstances takes IP:PORT only inside api.allow_targets: 1.2.3.4:22 is refused (InvalidInstance), 127.0.0.1 is served', async () => {
    const outside = await errorOf(elb().send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'ok', Instances: [{ InstanceId: '1.2.3.4:22' }] })));
    expect(outside.name).toBe('InvalidEndPointException');
    expect(outside.message).toContain('1.2.3.4:22');
    await elb().send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'ok', Instances: [{ InstanceId: `127.0.0.1:${P.web}` }] }));
    await waitFor(async () => (await httpGet(P.elbOk)) === `b${P.web}`, 'the allowed instance is served', 15_000, 100);
    const lbs = (await elb().send(new DescribeLoadBalancersCommand({ LoadBalancerNames: ['ok'] }))).LoadBalancerDescriptions ?? [];
    expect(lbs[0]?.Instances?.map((i) => i.InstanceId)).toEqual([`127.0.0.1:${P.web}`]);
  });

  it('unsigned requests with made-up actions create no metric series', async () => {
    for (let i = 0; i < 20; i++) await fetch(`http://127.0.0.1:${P.api}/?Action=Made${i}Up&Version=2012-06-01`, { signal: AbortSignal.timeout(3000) });
    const text = await (await fetch(`http://127.0.0.1:${P.metrics}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    const actions = new Set([...text.matchAll(/^elastic_api_requests_total\{action="([^"]*)"/gm)].map((m) => m[1]));
    expect([...actions].filter((a) => a === 'unknown' || !(ACTIONS as readonly string[]).includes(a!))).toEqual(['unknown']);
    expect(text).toMatch(/^elastic_api_requests_total\{action="unknown",code="MissingAuthenticationToken"\} 20$/m);
  });

  it('SIGHUP adding a bind on a held port: the config is refused up front (the old one keeps running, nothing reloads); web serves 100% meanwhile', async () => {
    const from = daemon.err.lines.length;
    writeFileSync(file, config(`  - name: taken\n    sources: [st]\n    haproxy: { port: ${P.held}, mode: http }\n`));
    const web = requestLoop(`http://127.0.0.1:${P.haproxy}/id`, { ms: 6000, max: 1000 });
    process.kill(daemon.child.pid!, 'SIGHUP');
    const r = await web;
    expect(r.failures, `web failed ${r.failed} of ${r.ok + r.failed}`).toEqual([]);
    expect(r.ok).toBeGreaterThan(50);
    const line = await daemon.err.next((l) => l.includes('new config refused'), 'the refusal is logged', 1000, from);
    expect(line).toContain(`bind port in use: 127.0.0.1:${P.held} is already served by pid ${process.pid}`);
    expect(daemon.err.lines.slice(from).filter((l) => l.includes('sync failed') || l.includes('config reloaded'))).toEqual([]);
    const metrics = await (await fetch(`http://127.0.0.1:${P.metrics}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    expect(metrics).toMatch(/^elastic_config_reloads_total\{result="refused"\} 1$/m);
    expect(await httpGet(P.foreign)).toBe(`b${P.foreignBackend}`);
    writeFileSync(file, config());
  });
});
