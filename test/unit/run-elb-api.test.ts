import { createHash, createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigureHealthCheckCommand,
  CreateLoadBalancerCommand,
  CreateLoadBalancerListenersCommand,
  DeleteLoadBalancerCommand,
  DeleteLoadBalancerListenersCommand,
  DeregisterInstancesFromLoadBalancerCommand,
  DescribeInstanceHealthCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingClient,
  RegisterInstancesWithLoadBalancerCommand,
} from '@aws-sdk/client-elastic-load-balancing';
import { SignatureV4 } from '@smithy/signature-v4';
import { ElbService, type ElbHost } from '../../src/engine/run/elb/actions.js';
import type { ElbState } from '../../src/engine/run/elb/model.js';
import { startElbServer, type RunningElbServer } from '../../src/engine/run/elb/server.js';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';
import { forbiddenTargets } from '../../src/engine/run/elb-host.js';
import { inCidrs, parseCidr } from '../../src/engine/run/elb/model.js';

const KEY = { accessKeyId: 'AKIDRUNTEST0000001', secretAccessKey: 'run-test-secret-key-0123456789abcdef' };
const REGION = 'us-east-1';
let dir: string;
let server: RunningElbServer;
let endpoint: string;
const changes: ElbState[] = [];
const host: ElbHost = {
  reservedPorts: () => new Set([18899]),
  forbiddenTargets: (ids) => forbiddenTargets(ids, ['198.18.0.0/15'], []),
  portsTaken: async (ports) => ports.filter((p) => p === 18898).map((p) => `127.0.0.1:${p} is already served by pid 1 (other)`),
  unknownInstances: async (ids) => ids.filter((i) => i === 'deadbeefdead'),
  health: async (lb) => lb.instances.map((id) => ({ instanceId: id, state: 'InService', reasonCode: 'N/A', description: 'N/A' })),
  dnsName: () => '127.0.0.1',
  onChange: (s) => changes.push(s),
};
const client = (creds = KEY) => new ElasticLoadBalancingClient({ endpoint, region: REGION, credentials: creds, maxAttempts: 1 });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'run-elb-'));
  const service = new ElbService(new FileStateStore(dir), host);
  server = await startElbServer({ address: '127.0.0.1', port: 0, region: REGION, keys: [{ accessKeyId: KEY.accessKeyId, secret: KEY.secretAccessKey }], service });
  endpoint = `http://127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('ELB API with the real AWS SDK client', () => {
  it('every action round-trips', async () => {
    const elb = client();
    const created = await elb.send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-web', Listeners: [{ Protocol: 'HTTP', LoadBalancerPort: 18850, InstanceProtocol: 'HTTP', InstancePort: 80 }], AvailabilityZones: ['local-1a'] }));
    expect(created.DNSName).toBe('127.0.0.1');
    await elb.send(new CreateLoadBalancerListenersCommand({ LoadBalancerName: 'run-web', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18851, InstancePort: 80 }] }));
    const reg = await elb.send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'run-web', Instances: [{ InstanceId: '198.18.0.10:80' }, { InstanceId: '0123456789ab' }] }));
    expect(reg.Instances?.map((i) => i.InstanceId)).toEqual(['198.18.0.10:80', '0123456789ab']);
    const hc = await elb.send(new ConfigureHealthCheckCommand({ LoadBalancerName: 'run-web', HealthCheck: { Target: 'HTTP:80/id', Interval: 5, Timeout: 2, UnhealthyThreshold: 2, HealthyThreshold: 2 } }));
    expect(hc.HealthCheck).toEqual({ Target: 'HTTP:80/id', Interval: 5, Timeout: 2, UnhealthyThreshold: 2, HealthyThreshold: 2 });
    const d = await elb.send(new DescribeLoadBalancersCommand({ LoadBalancerNames: ['run-web'] }));
    const lb = d.LoadBalancerDescriptions![0]!;
    expect(lb.LoadBalancerName).toBe('run-web');
    expect(lb.ListenerDescriptions?.map((l) => l.Listener)).toEqual([
      { Protocol: 'HTTP', LoadBalancerPort: 18850, InstanceProtocol: 'HTTP', InstancePort: 80 },
      { Protocol: 'TCP', LoadBalancerPort: 18851, InstanceProtocol: 'TCP', InstancePort: 80 },
    ]);
    expect(lb.Instances?.map((i) => i.InstanceId)).toEqual(['198.18.0.10:80', '0123456789ab']);
    expect(lb.HealthCheck?.Target).toBe('HTTP:80/id');
    expect(lb.AvailabilityZones).toEqual(['local-1a']);
    expect(lb.CreatedTime).toBeInstanceOf(Date);
    const health = await elb.send(new DescribeInstanceHealthCommand({ LoadBalancerName: 'run-web' }));
    expect(health.InstanceStates?.map((s) => [s.InstanceId, s.State])).toEqual([['198.18.0.10:80', 'InService'], ['0123456789ab', 'InService']]);
    const dereg = await elb.send(new DeregisterInstancesFromLoadBalancerCommand({ LoadBalancerName: 'run-web', Instances: [{ InstanceId: '0123456789ab' }] }));
    expect(dereg.Instances?.map((i) => i.InstanceId)).toEqual(['198.18.0.10:80']);
    await elb.send(new DeleteLoadBalancerListenersCommand({ LoadBalancerName: 'run-web', LoadBalancerPorts: [18851] }));
    const after = await elb.send(new DescribeLoadBalancersCommand({}));
    expect(after.LoadBalancerDescriptions?.[0]?.ListenerDescriptions).toHaveLength(1);
    await elb.send(new DeleteLoadBalancerCommand({ LoadBalancerName: 'run-web' }));
    expect((await elb.send(new DescribeLoadBalancersCommand({}))).LoadBalancerDescriptions).toEqual([]);
    expect(changes.length).toBeGreaterThanOrEqual(7);
  });

  it('pages DescribeLoadBalancers with Marker/NextMarker', async () => {
    const elb = client();
    for (let i = 0; i < 3; i++) await elb.send(new CreateLoadBalancerCommand({ LoadBalancerName: `run-page-${i}`, Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18860 + i, InstancePort: 80 }] }));
    const p1 = await elb.send(new DescribeLoadBalancersCommand({ PageSize: 2 }));
    expect(p1.LoadBalancerDescriptions).toHaveLength(2);
    expect(p1.NextMarker).toBeTruthy();
    const p2 = await elb.send(new DescribeLoadBalancersCommand({ PageSize: 2, Marker: p1.NextMarker }));
    expect(p2.LoadBalancerDescriptions?.map((l) => l.LoadBalancerName)).toEqual(['run-page-2']);
    expect(p2.NextMarker).toBeUndefined();
    for (let i = 0; i < 3; i++) await elb.send(new DeleteLoadBalancerCommand({ LoadBalancerName: `run-page-${i}` }));
  });

  const errorCases: Array<[string, () => Promise<unknown>, string, string]> = [
    ['unknown load balancer', () => client().send(new DescribeLoadBalancersCommand({ LoadBalancerNames: ['nope'] })), 'AccessPointNotFoundException', 'LoadBalancerNotFound'],
    ['register to unknown', () => client().send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'nope', Instances: [{ InstanceId: '198.18.0.1:80' }] })), 'AccessPointNotFoundException', 'LoadBalancerNotFound'],
    ['bad LB name', () => client().send(new CreateLoadBalancerCommand({ LoadBalancerName: '-bad-', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18870, InstancePort: 80 }] })), 'ValidationError', 'ValidationError'],
    ['HTTPS listener', () => client().send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-tls', Listeners: [{ Protocol: 'HTTPS', LoadBalancerPort: 18870, InstancePort: 80 }] })), 'UnsupportedProtocolException', 'UnsupportedProtocol'],
    ['a port another process serves', () => client().send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-taken', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18898, InstancePort: 80 }] })), 'InvalidConfigurationRequestException', 'InvalidConfigurationRequest'],
    ['an instance outside allow_targets (127.0.0.1:22)', () => client().send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'run-targets', Instances: [{ InstanceId: '127.0.0.1:22' }] })), 'InvalidEndPointException', 'InvalidInstance'],
    ['an instance outside allow_targets (1.2.3.4:22)', () => client().send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'run-targets', Instances: [{ InstanceId: '198.18.0.5:80' }, { InstanceId: '1.2.3.4:22' }] })), 'InvalidEndPointException', 'InvalidInstance'],
    ['reserved port', () => client().send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-res', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18899, InstancePort: 80 }] })), 'InvalidConfigurationRequestException', 'InvalidConfigurationRequest'],
    ['unsigned-bad secret', () => client({ ...KEY, secretAccessKey: 'wrong-secret-0123456789abcdefghij' }).send(new DescribeLoadBalancersCommand({})), 'SignatureDoesNotMatch', 'SignatureDoesNotMatch'],
    ['unknown key', () => client({ ...KEY, accessKeyId: 'AKIDUNKNOWN0000000' }).send(new DescribeLoadBalancersCommand({})), 'InvalidClientTokenId', 'InvalidClientTokenId'],
  ];
  it.each(errorCases)('%s is refused with the AWS error', async (_n, call, name, code) => {
    await client().send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-targets', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18873, InstancePort: 80 }] }));
    const err = (await call().then(() => null, (e: unknown) => e)) as { name: string; Code?: string; $metadata?: { httpStatusCode?: number }; $response?: unknown } | null;
    expect(err, 'the call should fail').not.toBeNull();
    expect(err!.name).toBe(name);
    expect((err as { Code?: string }).Code ?? (err as { name: string }).name).toBe(code === name ? name : code);
  });

  it('duplicate name with other listeners, unknown instance, deregister of an unregistered one', async () => {
    const elb = client();
    await elb.send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-dup', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18871, InstancePort: 80 }] }));
    // The same definition again is fine (idempotent, as AWS).
    await elb.send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-dup', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18871, InstancePort: 80 }] }));
    const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: { name: string }) => e.name);
    expect(await codeOf(elb.send(new CreateLoadBalancerCommand({ LoadBalancerName: 'run-dup', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18872, InstancePort: 80 }] })))).toBe('DuplicateAccessPointNameException');
    expect(await codeOf(elb.send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'run-dup', Instances: [{ InstanceId: 'deadbeefdead' }] })))).toBe('InvalidEndPointException');
    expect(await codeOf(elb.send(new RegisterInstancesWithLoadBalancerCommand({ LoadBalancerName: 'run-dup', Instances: [{ InstanceId: 'a;b' }] })))).toBe('InvalidEndPointException');
    expect(await codeOf(elb.send(new DeregisterInstancesFromLoadBalancerCommand({ LoadBalancerName: 'run-dup', Instances: [{ InstanceId: '198.18.0.9:80' }] })))).toBe('InvalidEndPointException');
    expect(await codeOf(elb.send(new CreateLoadBalancerListenersCommand({ LoadBalancerName: 'run-dup', Listeners: [{ Protocol: 'TCP', LoadBalancerPort: 18871, InstancePort: 81 }] })))).toBe('DuplicateListenerException');
    await elb.send(new DeleteLoadBalancerCommand({ LoadBalancerName: 'run-dup' }));
  });
});

describe('ELB API over plain HTTP', () => {
  it('an unsigned request is refused with MissingAuthenticationToken (403)', async () => {
    const res = await fetch(`${endpoint}/`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'Action=DescribeLoadBalancers&Version=2012-06-01' });
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/<ErrorResponse xmlns="http:\/\/elasticloadbalancing.amazonaws.com\/doc\/2012-06-01\/"><Error><Type>Sender<\/Type><Code>MissingAuthenticationToken<\/Code>/);
  });

  class Sha256 {
    private readonly h;
    constructor(secret?: Uint8Array | string) {
      this.h = secret ? createHmac('sha256', secret) : createHash('sha256');
    }
    update(d: Uint8Array | string) {
      this.h.update(d);
    }
    async digest() {
      return new Uint8Array(this.h.digest());
    }
  }
  const signer = (secret = KEY.secretAccessKey, service = 'elasticloadbalancing') =>
    new SignatureV4({ credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: secret }, region: REGION, service, sha256: Sha256 as never });
  const getRequest = () => ({ method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: server.port, path: '/', query: { Action: 'DescribeLoadBalancers', Version: '2012-06-01' }, headers: { host: `127.0.0.1:${server.port}` } });
  const url = (r: { query?: Record<string, string | string[] | null> }) => `${endpoint}/?${new URLSearchParams(r.query as Record<string, string>).toString()}`;

  it('a GET signed in the query string (presigned) is served', async () => {
    const presigned = await signer().presign(getRequest() as never, { expiresIn: 300 });
    const res = await fetch(url(presigned));
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.text()).toContain('<DescribeLoadBalancersResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/">');
  });

  it('a GET signed for another service, a tampered query, or an old timestamp is refused', async () => {
    const other = await signer(KEY.secretAccessKey, 'ec2').presign(getRequest() as never, { expiresIn: 300 });
    expect((await fetch(url(other))).status).toBe(403);
    const good = await signer().presign(getRequest() as never, { expiresIn: 300 });
    const tampered = { ...good, query: { ...good.query, Action: 'DeleteLoadBalancer', LoadBalancerName: 'x' } };
    const res = await fetch(url(tampered));
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    const old = await signer().presign(getRequest() as never, { expiresIn: 300, signingDate: new Date(Date.now() - 20 * 60_000) });
    const r2 = await fetch(url(old));
    expect(r2.status).toBe(403);
    expect(await r2.text()).toContain('Signature expired');
  });
});

describe('api.allow_targets', () => {
  it.each([
    ['198.18.0.0/15', '198.19.255.1', true],
    ['198.18.0.0/15', '198.20.0.1', false],
    ['127.0.0.1/32', '127.0.0.1', true],
    ['127.0.0.1/32', '127.0.0.2', false],
    ['0.0.0.0/0', '1.2.3.4', true],
    ['198.18.0.0/33', '198.18.0.1', false],
    ['not-a-cidr', '198.18.0.1', false],
  ])('%s contains %s: %s', (cidr, ip, want) => expect(inCidrs(ip, [cidr])).toBe(want));

  it('CIDRs parse strictly; an IP:PORT instance is allowed inside a CIDR or at a running container address, containers always', () => {
    expect(['198.18.0.0/15', '1.2.3.4/32', '0.0.0.0/0'].map((c) => parseCidr(c) !== null)).toEqual([true, true, true]);
    expect(['198.18.0.0', '198.18.0.0/x', '::1/128', '300.1.1.1/8', '1.2.3.4/33'].map((c) => parseCidr(c))).toEqual([null, null, null, null, null]);
    const containers = [{ id: 'docker:0123456789ab', name: 'app', service: 'x', source: 'docker' as const, address: '198.18.0.7', port: 80, state: 'running' as const, health: 'none' as const, labels: {}, since: '' }];
    expect(forbiddenTargets(['127.0.0.1:22', '1.2.3.4:22', '198.18.0.7:8080', '198.18.0.8', '0123456789ab', 'app'], [], containers)).toEqual(['127.0.0.1:22', '1.2.3.4:22', '198.18.0.8']);
    expect(forbiddenTargets(['127.0.0.1:22', '198.18.0.8'], ['198.18.0.0/24'], containers)).toEqual(['127.0.0.1:22']);
  });
});
