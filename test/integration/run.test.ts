import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateLoadBalancerCommand,
  DeregisterInstancesFromLoadBalancerCommand,
  DescribeInstanceHealthCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingClient,
  RegisterInstancesWithLoadBalancerCommand,
} from '@aws-sdk/client-elastic-load-balancing';
import type Docker from 'dockerode';
import { BIN, elastic } from '../support/cli.js';
import { requireDocker, TestContainers, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { createClientNamespace, type ClientNamespace } from '../support/netns.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { defaultPaths } from '../../src/engine/render.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { parseExposition } from '../fixtures/run/exposition.js';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * `elastic run` end to end: the built binary, spawned and killed by pid, with the real dockerd,
 * HAProxy, the kernel's DNAT (nft) and the real AWS SDK ELB client.
 */
const tc = new TestContainers();
const stateDir = ownedStateDir('run-state-');
const runDir = mkdtempSync(join(tmpdir(), 'run-run-'));
const dir = mkdtempSync(join(tmpdir(), 'run-cfg-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const file = join(dir, 'elastic.yaml');
const KEY = { accessKeyId: 'AKIDRUNINTEG000001', secretAccessKey: 'run-integration-secret-0123456789ab' };
const P = { haproxy: 18830, dnat: 18831, metrics: 18832, api: 18833, elb: 18834 };
const children: ChildProcess[] = [];
let ns: ClientNamespace;
const containers: Docker.Container[] = [];

const config = (balance = 'roundrobin') => `version: 1
name: run-it
sources:
  web:
    docker: { label: ["elastic.test=${tc.runId}"], port: 80 }
services:
  - name: web
    sources: [web]
    guardrails: { min_backends: 1, max_change: 100 }
    haproxy: { port: ${P.haproxy}, mode: http, balance: ${balance} }
    map_image: { port: ${P.dnat}, dataplane: nft }
sync: { min_interval_ms: 50 }
metrics:
  prometheus: { port: ${P.metrics} }
api:
  port: ${P.api}
  keys: [{ access_key_id: ${KEY.accessKeyId}, secret: ${KEY.secretAccessKey} }]
`;

function startDaemon(): { child: ChildProcess; err: LineReader } {
  const child = spawn(process.execPath, [BIN, 'run', '-c', file, '--log-json'], { env: { ...process.env, ...env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return { child, err: new LineReader(child.stderr!) };
}

const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));
const get = async (url: string) => {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000), headers: { connection: 'close' } });
  return (await res.text()).trim();
};
/** Which backends answer: container hostnames (= 12-hex ids) seen in `n` requests. */
async function answering(url: string, n = 12): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await get(url).catch(() => 'ERR'));
  return seen;
}
async function viaDnat(n = 12): Promise<Set<string>> {
  return new Set((await ns.httpSpread(`http://${ns.hostAddress}:${P.dnat}/id`, n, { concurrency: 4 })).keys());
}
const ids = () => new Set(containers.map((c) => c.id.slice(0, 12)));
const same = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((x) => b.has(x));
const statusOf = () => requestStatus<Snapshot>(join(runDir, 'run.run-it.sock'));
const elb = (creds = KEY) => new ElasticLoadBalancingClient({ endpoint: `http://127.0.0.1:${P.api}`, region: 'us-east-1', credentials: creds, maxAttempts: 1 });

async function addContainer(): Promise<void> {
  containers.push(await tc.run({ name: `run-${tc.runId}-${containers.length}` }));
}

beforeAll(async () => {
  await requireDocker();
  ns = await createClientNamespace({ name: 'run-cli', prefix: '198.19.8', index: 0 });
  await addContainer();
  await addContainer();
  writeFileSync(file, config());
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) await Promise.resolve().then(() => process.kill(c.pid!, 'SIGKILL')).catch(() => {});
  const d = defaultPaths('run-run-it', 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  await elastic(['map-image', 'stop', '--all'], { env });
  await tc.cleanup();
  await ns?.cleanup();
  for (const p of [stateDir, runDir, dir]) rmSync(p, { recursive: true, force: true });
});

describe('elastic run', () => {
  let daemon: { child: ChildProcess; err: LineReader };
  // A failure is easier to read with what the daemon said.
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && daemon) process.stderr.write(`daemon stderr:\n${daemon.err.lines.slice(-30).join('\n')}\n`);
  });

  it('--check validates; a broken config exits 5 naming the line and path', async () => {
    const ok = await elastic(['run', '-c', file, '--check'], { env });
    expect(ok.exitCode, String(ok.stderr)).toBe(0);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, config().replace(`port: ${P.haproxy}`, 'port: 99999'));
    const r = await elastic(['run', '-c', bad, '--check'], { env });
    expect(r.exitCode).toBe(5);
    expect(r.stderr).toContain('bad.yaml:10: services[0].haproxy.port: must be 1-65535');
  });

  it('serves every frontend from the containers, and follows them as they come and go', async () => {
    daemon = startDaemon();
    await waitFor(async () => same(await answering(`http://127.0.0.1:${P.haproxy}/id`), ids()), 'HAProxy serves both containers', 20_000, 200);
    await waitFor(async () => same(await viaDnat(), ids()), 'DNAT spreads over both containers', 20_000, 200);
    await addContainer();
    await waitFor(async () => same(await answering(`http://127.0.0.1:${P.haproxy}/id`, 18), ids()), 'HAProxy follows the new container', 20_000, 200);
    await waitFor(async () => same(await viaDnat(18), ids()), 'DNAT follows the new container', 20_000, 200);
    const gone = containers.shift()!;
    await gone.remove({ force: true });
    await waitFor(async () => same(await answering(`http://127.0.0.1:${P.haproxy}/id`), ids()), 'HAProxy drops the removed container', 20_000, 200);
    await waitFor(async () => same(await viaDnat(), ids()), 'DNAT drops the removed container', 20_000, 200);
    const snap = await statusOf();
    expect(snap.kind).toBe('run');
    const web = snap.services.web as { backends: Array<{ address: string }>; appliers: Record<string, unknown> };
    expect(web.backends).toHaveLength(2);
    expect(Object.keys(web.appliers).sort()).toEqual(['haproxy', 'map-image']);
  });

  it('metrics match the real state', async () => {
    for (let i = 0; i < 10; i++) await get(`http://127.0.0.1:${P.haproxy}/id`);
    await viaDnat(10);
    const { samples } = parseExposition(await get(`http://127.0.0.1:${P.metrics}/metrics`));
    expect(samples.get('elastic_backends{service="web"}')).toBe(2);
    const addresses = await Promise.all(containers.map((c) => tc.ip(c)));
    const served = [...samples].filter(([k]) => k.startsWith('elastic_haproxy_sessions_total{service="web"'));
    expect(served.map(([k]) => /address="([^"]+):80"/.exec(k)![1]).sort()).toEqual([...addresses].sort());
    expect(served.reduce((n, [, v]) => n + v, 0)).toBeGreaterThanOrEqual(10);
    for (const a of addresses) expect(samples.get(`elastic_dnat_packets_total{mapping="tcp-${P.dnat}",backend="${a}:80"}`) ?? 0, `DNAT packets to ${a}`).toBeGreaterThan(0);
    expect(samples.get('elastic_syncs_total{applier="map-image",result="ok"}')).toBeGreaterThan(0);
    expect(samples.get('elastic_sync_duration_seconds_count{applier="haproxy"}')).toBeGreaterThan(0);
  });

  it('SIGHUP with a broken config is refused and the old keeps serving; a good one is applied', async () => {
    const hash = ((await statusOf()).config as { hash: string }).hash;
    writeFileSync(file, config().replace('sources: [web]', 'sources: [nope]'));
    const from = daemon.err.lines.length;
    process.kill(daemon.child.pid!, 'SIGHUP');
    await daemon.err.next((l) => l.includes('new config refused'), 'refusal logged', 10_000, from);
    expect(daemon.err.lines.slice(from).join('\n')).toContain('no source named');
    expect(((await statusOf()).config as { hash: string }).hash).toBe(hash);
    expect(same(await answering(`http://127.0.0.1:${P.haproxy}/id`), ids())).toBe(true);
    writeFileSync(file, config('leastconn'));
    process.kill(daemon.child.pid!, 'SIGHUP');
    await daemon.err.next((l) => l.includes('config reloaded'), 'reload applied', 10_000, from);
    await waitFor(async () => (await readFile(defaultPaths('run-run-it', 'haproxy', env).output, 'utf8')).includes('leastconn'), 'HAProxy config follows', 10_000, 100);
    expect(same(await answering(`http://127.0.0.1:${P.haproxy}/id`), ids())).toBe(true);
  });

  it('the ELB API: the real SDK creates a load balancer, registers containers and ip:port, traffic flows through HAProxy', async () => {
    const [a, b] = containers;
    const bIp = await tc.ip(b!);
    await elb().send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-elb', Listeners: [{ Protocol: 'HTTP', LoadBalancerPort: P.elb, InstanceProtocol: 'HTTP', InstancePort: 80 }] }));
    await elb().send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'run-elb', Instances: [{ InstanceId: a!.id.slice(0, 12) }, { InstanceId: `${bIp}:80` }] }));
    await waitFor(async () => same(await answering(`http://127.0.0.1:${P.elb}/id`), ids()), 'traffic through the ELB listener', 20_000, 200);
    await waitFor(async () => (await elb().send(new DescribeInstanceHealthCommand({ LoadBalancerName: 'run-elb' }))).InstanceStates?.every((s) => s.State === 'InService'), 'instances InService', 20_000, 300);
    await elb().send(new DeregisterInstancesFromLoadBalancerCommand({ LoadBalancerName: 'run-elb', Instances: [{ InstanceId: `${bIp}:80` }] }));
    await waitFor(async () => same(await answering(`http://127.0.0.1:${P.elb}/id`), new Set([a!.id.slice(0, 12)])), 'deregistered instance gets no traffic', 20_000, 200);
    const unknown = await elb().send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'run-elb', Instances: [{ InstanceId: 'ffffffffffff' }] })).then(() => 'ok', (e: { name: string }) => e.name);
    expect(unknown).toBe('InvalidEndPointException');
    const bad = await elb({ ...KEY, secretAccessKey: 'not-the-secret-0123456789abcdefghij' }).send(new DescribeLoadBalancersCommand({})).then(() => 'ok', (e: { name: string }) => e.name);
    expect(bad).toBe('SignatureDoesNotMatch');
    const { samples } = parseExposition(await get(`http://127.0.0.1:${P.metrics}/metrics`));
    expect(samples.get('elastic_api_requests_total{action="DescribeLoadBalancers",code="SignatureDoesNotMatch"}')).toBe(1);
  });

  it('kill -9: traffic keeps flowing; a restart reconciles with no duplicates', async () => {
    const haproxyPid = Number((await readFile(defaultPaths('run-run-it', 'haproxy', env).pidFile, 'utf8')).trim());
    const rulesBefore = await nftRuleCount();
    expect(rulesBefore).toBeGreaterThan(0);
    process.kill(daemon.child.pid!, 'SIGKILL');
    await exited(daemon.child);
    expect(same(await answering(`http://127.0.0.1:${P.haproxy}/id`), ids())).toBe(true);
    expect(same(await viaDnat(), ids())).toBe(true);
    expect((await answering(`http://127.0.0.1:${P.elb}/id`)).size).toBe(1);
    daemon = startDaemon();
    await daemon.err.next((l) => l.includes('"msg":"running"'), 'daemon running again', 20_000);
    await waitFor(async () => (await statusOf()).services['elb-run-elb-' + P.elb] !== undefined, 'ELB state restored', 10_000, 100);
    await waitFor(async () => ((await statusOf()).services.web as { backends: unknown[] }).backends.length === 2, 'web reconciled', 10_000, 100);
    expect(await nftRuleCount()).toBe(rulesBefore);
    expect(pidAlive(haproxyPid)).toBe(true);
    expect(Number((await readFile(defaultPaths('run-run-it', 'haproxy', env).pidFile, 'utf8')).trim())).toBe(haproxyPid);
    expect(same(await answering(`http://127.0.0.1:${P.haproxy}/id`), ids())).toBe(true);
  });

  it('SIGTERM stops cleanly; HAProxy and the DNAT rules keep serving', async () => {
    process.kill(daemon.child.pid!, 'SIGTERM');
    expect(await exited(daemon.child)).toBe(0);
    expect(same(await answering(`http://127.0.0.1:${P.haproxy}/id`), ids())).toBe(true);
    expect(same(await viaDnat(), ids())).toBe(true);
  });

  it('--once syncs once and exits', async () => {
    const r = await elastic(['run', '-c', file, '--once', '--json'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const out = JSON.parse(String(r.stdout)) as { appliers: Record<string, string> };
    expect(Object.keys(out.appliers).sort()).toEqual(['haproxy', 'map-image']);
    expect(same(await answering(`http://127.0.0.1:${P.haproxy}/id`), ids())).toBe(true);
  });
});

/** Rules in our nft table that carry this mapping's id (a duplicate would add more). */
async function nftRuleCount(): Promise<number> {
  // The daemon's state dir is a temp dir, so its kernel objects live in their own namespace.
  const r = await execa('nft', ['list', 'table', 'ip', namespaceFor(stateDir).nftTable], { reject: false });
  return r.stdout.split('\n').filter((l) => l.includes(`tcp-${P.dnat}`)).length;
}
