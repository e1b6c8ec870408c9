import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEc2Server, type Ec2TestServer } from '../support/ec2-server.js';
import { installInstanceActions, type Launch } from '../support/ec2-actions.js';
import { elastic } from '../support/cli.js';

/**
 * `elastic deploy ec2` with the real @aws-sdk/client-ec2 against the loopback EC2 server:
 * RunInstances from a launch template with tags, TerminateInstances, and discover finding them.
 */
const AWS = {
  AWS_ACCESS_KEY_ID: 'AKIAELASTICTEST00001',
  AWS_SECRET_ACCESS_KEY: 'elastic-test-secret',
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/elastic-test/credentials',
  AWS_CONFIG_FILE: '/nonexistent/elastic-test/config',
};

describe('elastic deploy ec2 (loopback EC2 API)', () => {
  let server: Ec2TestServer;
  let launches: Launch[];
  const run = (args: string[]) => elastic([...args, '--endpoint', server.url], { env: AWS });
  const svc = `dplec2${process.pid % 10000}`;
  const running = () => server.instances.filter((i) => i.state !== 'terminated' && i.tags?.['elastic.service'] === svc);

  beforeAll(async () => {
    server = await startEc2Server();
    ({ launches } = installInstanceActions(server));
  });
  afterAll(() => server.stop());

  it('launches, finds, scales, replaces on a new template version, and terminates', async () => {
    const up = await run(['deploy', 'ec2', '--name', svc, '--launch-template', 'lt-0123456789abcdef0', '--template-version', '3', '--replicas', '3', '--tag', 'Role=web', '--json']);
    expect(up.exitCode, String(up.stderr)).toBe(0);
    const res = JSON.parse(String(up.stdout));
    expect(res.launched).toHaveLength(3);
    expect(res.instances).toHaveLength(3);
    expect(launches[0]).toMatchObject({ template: 'lt-0123456789abcdef0', version: '3', count: 3, tags: { Role: 'web', 'elastic.managed': 'true', 'elastic.service': svc, 'elastic.revision': res.revision } });
    expect(launches[0]!.clientToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(running().every((i) => i.state === 'running')).toBe(true);

    const disc = await run(['discover', '--tag', `elastic.service=${svc}`, '--port', '80', '--json']);
    expect(disc.exitCode, String(disc.stderr)).toBe(0);
    expect(JSON.parse(String(disc.stdout)).backends.map((b: { address: string }) => b.address).sort()).toEqual(running().map((i) => i.privateIp).sort());

    // Same spec again: nothing to do.
    const same = await run(['deploy', 'ec2', '--name', svc, '--launch-template', 'lt-0123456789abcdef0', '--template-version', '3', '--replicas', '3', '--tag', 'Role=web', '--json']);
    expect(JSON.parse(String(same.stdout))).toMatchObject({ launched: [], terminated: [] });

    const down = await run(['deploy', 'ec2', '--name', svc, '--launch-template', 'lt-0123456789abcdef0', '--template-version', '3', '--replicas', '1', '--tag', 'Role=web', '--json']);
    expect(JSON.parse(String(down.stdout)).terminated).toHaveLength(2);
    expect(running()).toHaveLength(1);

    // A new template version: launched and running before the old one is terminated.
    const v4 = await run(['deploy', 'ec2', '--name', svc, '--launch-template', 'lt-0123456789abcdef0', '--template-version', '4', '--replicas', '1', '--tag', 'Role=web', '--json']);
    expect(v4.exitCode, String(v4.stderr)).toBe(0);
    const r4 = JSON.parse(String(v4.stdout));
    expect(r4.revision).not.toBe(res.revision);
    expect(r4.launched).toHaveLength(1);
    expect(r4.terminated).toHaveLength(1);
    const order = server.requests.map((r) => r.action);
    expect(order.lastIndexOf('RunInstances')).toBeLessThan(order.lastIndexOf('TerminateInstances'));
    expect(running().map((i) => i.tags?.['elastic.revision'])).toEqual([r4.revision]);

    const zero = await run(['deploy', 'ec2', '--name', svc, '--launch-template', 'lt-0123456789abcdef0', '--template-version', '4', '--replicas', '0', '--tag', 'Role=web']);
    expect(zero.exitCode, String(zero.stderr)).toBe(0);
    expect(running()).toHaveLength(0);
  }, 150_000); // six CLI runs: ~25 s alone, past 60 s on a loaded CI machine (then its last run took the next test's injected failure)

  it('errors: EC2 refusing RunInstances is a clear permission error; reserved tags are refused', async () => {
    server.failNext(1, { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' });
    const denied = await run(['deploy', 'ec2', '--name', svc, '--launch-template', 'lt-0123456789abcdef0', '--replicas', '1']);
    expect(denied.exitCode).toBe(4);
    expect(String(denied.stderr)).toMatch(/EC2 denied ec2:DescribeInstances/);
    const reserved = await run(['deploy', 'ec2', '--name', svc, '--launch-template', 'lt-0123456789abcdef0', '--replicas', '1', '--tag', 'elastic.service=x']);
    expect(reserved.exitCode).toBe(2);
    expect(String(reserved.stderr)).toMatch(/reserved/);
  });
});
