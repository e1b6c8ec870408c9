import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateLoadBalancerCommand,
  DeregisterInstancesFromLoadBalancerCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingClient,
  RegisterInstancesWithLoadBalancerCommand,
} from '@aws-sdk/client-elastic-load-balancing';
import type Docker from 'dockerode';
import { elastic } from '../support/cli.js';
import { requireDocker, TestContainers, waitFor } from '../support/docker.js';
import { EtcdCluster } from '../support/etcd.js';
import { converged, FleetHost, fleetStatus, startBackend, teardownFleet } from '../support/fleet.js';

/**
 * The ELB API in a fleet: a real etcd (1 member), three `elastic run --etcd --fleet --host`
 * daemons (each its own state/run dir, API port and listener address from `hosts:`), real HAProxy,
 * real containers and the real AWS SDK client. A load balancer created on one host and instances
 * registered on another are served by every host; a deregistration on one is followed by all.
 */
const etcd = new EtcdCluster(24000, 1);
const FLEET = 'fleet-elb';
const KEY = { accessKeyId: 'AKIDFLEETELB000001', secretAccessKey: 'fleet-elb-integration-secret-0123' };
const dir = mkdtempSync(join(tmpdir(), 'fleet-elb-cfg-'));
const file = join(dir, 'elastic.yaml');
const BACKEND = 24040;
const LISTENER = 24030;
/** Held on host 2's address by another process in the last test. */
const TAKEN = 24031;
// Every host's ELB listeners bind the same port on its own loopback address (api.haproxy.address).
const HOSTS = [
  { name: 'lb-1', web: 24011, api: 24021, address: '127.0.0.1' },
  { name: 'lb-2', web: 24012, api: 24022, address: '127.0.0.2' },
  { name: 'lb-3', web: 24013, api: 24023, address: '127.0.0.3' },
];
const hosts = HOSTS.map((h) => new FleetHost(h.name, 'fleetelb'));
const servers: Server[] = [];
const tc = new TestContainers();
const containers: Docker.Container[] = [];

const config = `version: 1
name: fleetelb
sources:
  web:
    static: { backends: ["127.0.0.1:${BACKEND}"] }
services:
  - name: web
    sources: [web]
    haproxy: { port: 24010, mode: http }
sync: { min_interval_ms: 50 }
api:
  port: 24020
  keys: [{ access_key_id: ${KEY.accessKeyId}, secret: ${KEY.secretAccessKey} }]
hosts:
${HOSTS.map((h) => `  ${h.name}:\n    services:\n      web: { haproxy: { port: ${h.web} } }\n    api: { port: ${h.api}, haproxy: { address: ${h.address} } }`).join('\n')}
`;

const elb = (i: number) => new ElasticLoadBalancingClient({ endpoint: `http://127.0.0.1:${HOSTS[i]!.api}`, region: 'us-east-1', credentials: KEY, maxAttempts: 1 });
const id = (c: Docker.Container) => c.id.slice(0, 12);
/** Which containers answer through host i's listener (hostnames = 12-hex ids) in `n` requests. */
async function answering(i: number, n = 12, port = LISTENER): Promise<string> {
  const seen = new Set<string>();
  for (let k = 0; k < n; k++) {
    try {
      const res = await fetch(`http://${HOSTS[i]!.address}:${port}/id`, { signal: AbortSignal.timeout(3000), headers: { connection: 'close' } });
      seen.add((await res.text()).trim());
    } catch {
      seen.add('ERR');
    }
  }
  return [...seen].sort().join(',');
}

beforeAll(async () => {
  await requireDocker();
  await etcd.start();
  servers.push(await startBackend(BACKEND, 'W'));
  containers.push(await tc.run({ name: `fleet-elb-${tc.runId}-a` }), await tc.run({ name: `fleet-elb-${tc.runId}-b` }));
  writeFileSync(file, config);
  const r = await elastic(['cluster', 'push', '-c', file, '--etcd', etcd.endpoints, '--fleet', FLEET]);
  expect(r.exitCode, `${r.stdout}${r.stderr}`).toBe(0);
  for (const h of hosts) h.start(etcd.endpoints, FLEET);
  await converged(etcd.endpoints, FLEET, 3, 1, 30_000);
}, 90_000);

afterAll(async () => {
  await tc.cleanup();
  await teardownFleet(hosts, servers, etcd, [dir]);
}, 60_000);

describe('the ELB API on every fleet host', () => {
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') for (const h of hosts) process.stderr.write(`--- ${h.name}\n${h.err?.lines.slice(-20).join('\n')}\n`);
  });

  it('CreateLoadBalancer on host 1, RegisterInstances on host 2: traffic through host 3 reaches the container', async () => {
    const [a] = containers;
    await elb(0).send(new CreateLoadBalancerCommand({ LoadBalancerName: 'shop', Listeners: [{ Protocol: 'HTTP', LoadBalancerPort: LISTENER, InstanceProtocol: 'HTTP', InstancePort: 80 }] }));
    await elb(1).send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'shop', Instances: [{ InstanceId: id(a!) }] }));
    await waitFor(async () => (await answering(2)) === id(a!), 'host 3 serving the container registered on host 2', 20_000, 200);
    for (const i of [0, 1]) await waitFor(async () => (await answering(i)) === id(a!), `host ${i + 1} serving it too`, 20_000, 200);
    const d = await elb(2).send(new DescribeLoadBalancersCommand({}));
    expect(d.LoadBalancerDescriptions?.map((lb) => [lb.LoadBalancerName, lb.Instances?.map((x) => x.InstanceId)])).toEqual([['shop', [id(a!)]]]);
  }, 60_000);

  it('two hosts registering at once both land (compare-and-swap, retried); DeregisterInstances on host 3 is followed by host 1', async () => {
    const [a, b] = containers;
    await elb(0).send(new DeregisterInstancesFromLoadBalancerCommand({ LoadBalancerName: 'shop', Instances: [{ InstanceId: id(a!) }] }));
    await Promise.all([
      elb(1).send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'shop', Instances: [{ InstanceId: id(a!) }] })),
      elb(2).send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'shop', Instances: [{ InstanceId: id(b!) }] })),
    ]);
    const both = [id(a!), id(b!)].sort().join(',');
    const d = await elb(0).send(new DescribeLoadBalancersCommand({ LoadBalancerNames: ['shop'] }));
    expect(d.LoadBalancerDescriptions?.[0]?.Instances?.map((x) => x.InstanceId).sort().join(',')).toBe(both);
    await waitFor(async () => (await answering(0, 16)) === both, 'host 1 serving both containers', 20_000, 200);
    await elb(2).send(new DeregisterInstancesFromLoadBalancerCommand({ LoadBalancerName: 'shop', Instances: [{ InstanceId: id(b!) }] }));
    await waitFor(async () => (await answering(0, 16)) === id(a!), 'host 1 follows the deregistration made on host 3', 20_000, 200);
  }, 60_000);

  it('a listener whose port another process holds on host 2: refused there, created on host 1, served by 1 and 3; host 2 serves the rest and says why', async () => {
    const [a, b] = containers;
    const other = createServer((_req, res) => res.setHeader('connection', 'close').end('not-elastic'));
    await new Promise<void>((r) => other.listen(TAKEN, HOSTS[1]!.address, () => r()));
    servers.push(other);
    const onHost2 = await elb(1).send(new CreateLoadBalancerCommand({ LoadBalancerName: 'admin', Listeners: [{ Protocol: 'HTTP', LoadBalancerPort: TAKEN, InstanceProtocol: 'HTTP', InstancePort: 80 }] })).then(() => 'ok', (e: { name: string; message: string }) => `${e.name}: ${e.message}`);
    expect(onHost2).toMatch(/^InvalidConfigurationRequestException: LoadBalancerPort in use on this host: 127.0.0.2:24031 is already served by/);
    const from = hosts[1]!.err!.lines.length;
    await elb(0).send(new CreateLoadBalancerCommand({ LoadBalancerName: 'admin', Listeners: [{ Protocol: 'HTTP', LoadBalancerPort: TAKEN, InstanceProtocol: 'HTTP', InstancePort: 80 }] }));
    await elb(2).send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'admin', Instances: [{ InstanceId: id(b!) }] }));
    for (const i of [0, 2]) await waitFor(async () => (await answering(i, 6, TAKEN)) === id(b!), `host ${i + 1} serving admin`, 20_000, 200);
    await hosts[1]!.err!.next((l) => l.includes('ELB listener(s) not served here: port taken on this host') && l.includes(String(TAKEN)), 'host 2 saying why', 10_000, from);
    expect(await answering(1, 4, TAKEN)).toBe('not-elastic');
    const refusal = () => fleetStatus(etcd.endpoints, FLEET).then((st) => Object.fromEntries(st.hosts.map((h) => [h.name, h.elbRefusal?.message ?? null])));
    const r = (await waitFor(async () => ((await refusal())['lb-2'] ? refusal() : null), 'the refusal in lb-2\'s fleet status', 10_000, 200))!;
    expect(r['lb-2']).toContain(`127.0.0.2:${TAKEN} is already served by pid ${process.pid}`);
    expect([r['lb-1'], r['lb-3']]).toEqual([null, null]);
    expect((await elastic(['cluster', 'status', '--etcd', etcd.endpoints, '--fleet', FLEET])).stdout).toMatch(/lb-2 .*ELB listener not served: 127\.0\.0\.2:24031 is already served by/);
    // Host 2 keeps following the rest.
    await elb(0).send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'shop', Instances: [{ InstanceId: id(b!) }] }));
    await waitFor(async () => (await answering(1, 16)) === [id(a!), id(b!)].sort().join(','), 'host 2 following shop', 20_000, 200);
    // The port freed: the next change brings the listener to host 2 too.
    await new Promise((r) => other.close(r));
    await elb(2).send(new DeregisterInstancesFromLoadBalancerCommand({ LoadBalancerName: 'shop', Instances: [{ InstanceId: id(b!) }] }));
    await waitFor(async () => (await answering(1, 6, TAKEN)) === id(b!), 'host 2 serving admin once its port is free', 20_000, 200);
    await waitFor(async () => (await refusal())['lb-2'] === null, 'the refusal gone from lb-2\'s status', 10_000, 200);
  }, 60_000);

  it('the store gone: every host keeps serving its listeners and answers Describe; a change is refused with ServiceUnavailable', async () => {
    const [a, b] = containers;
    await etcd.killMember('m1');
    await new Promise((r) => setTimeout(r, 3000)); // past a watch's reconnect and a resync
    for (const i of [0, 1, 2]) {
      expect(await answering(i, 6)).toBe(id(a!));
      expect(await answering(i, 6, TAKEN)).toBe(id(b!));
    }
    const d = await elb(1).send(new DescribeLoadBalancersCommand({}));
    expect(d.LoadBalancerDescriptions?.map((lb) => lb.LoadBalancerName).sort()).toEqual(['admin', 'shop']);
    const change = await elb(2).send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'shop', Instances: [{ InstanceId: id(b!) }] })).then(() => 'ok', (e: { name: string; message: string }) => `${e.name}: ${e.message}`);
    expect(change).toMatch(/^ServiceUnavailable(Exception)?: etcd is unreachable or has no quorum .*; nothing was changed$/);
    for (const i of [0, 1, 2]) expect(await answering(i, 6)).toBe(id(a!));
  }, 60_000);
});
