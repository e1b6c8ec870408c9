import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';
import { startEc2Server, type Ec2TestServer } from '../support/ec2-server.js';

/** The `discover` flags wired to the real EC2 client, end to end through the built binary. */
const env = {
  AWS_ACCESS_KEY_ID: 'AKIAELASTICTEST00001',
  AWS_SECRET_ACCESS_KEY: 'elastic-test-secret',
  AWS_REGION: 'eu-west-1',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/elastic-test/credentials',
  AWS_CONFIG_FILE: '/nonexistent/elastic-test/config',
  AWS_EC2_METADATA_DISABLED: 'true',
};

describe('elastic discover --tag (EC2 on loopback)', () => {
  let server: Ec2TestServer;
  beforeAll(async () => {
    server = await startEc2Server({
      pageSize: 1,
      instances: [
        { instanceId: 'i-0a', privateIp: '198.18.7.10', publicIp: '198.19.7.10', tags: { Role: 'web', Name: 'web-a' } },
        { instanceId: 'i-0b', privateIp: '198.18.7.11', tags: { Role: 'web' } },
        { instanceId: 'i-0c', privateIp: '198.18.7.12', tags: { Role: 'db' } },
        { instanceId: 'i-0d', privateIp: '198.18.7.13', state: 'stopped', tags: { Role: 'web' } },
      ],
    });
  });
  afterAll(() => server.stop());

  it('lists running tagged instances across pages, private addresses by default', async () => {
    const r = await elastic(['discover', '--tag', 'Role=web', '--port', '8080', '--endpoint', server.url, '--json'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const out = JSON.parse(String(r.stdout));
    expect(out.backends.map((b: { id: string; endpoint: string; name: string }) => `${b.id} ${b.endpoint} ${b.name}`)).toEqual([
      'ec2:i-0a 198.18.7.10:8080 web-a',
      'ec2:i-0b 198.18.7.11:8080 i-0b',
    ]);
    const filters = server.requests.at(-1)!.filters.map((f) => `${f.name}=${f.values.join(',')}`);
    expect(filters).toEqual(expect.arrayContaining(['instance-state-name=running', 'tag:Role=web']));
  });

  it('--public uses public addresses and says which instances have none', async () => {
    const r = await elastic(['discover', '--tag', 'Role=web', '--port', '8080', '--endpoint', server.url, '--public', '--json'], { env });
    const out = JSON.parse(String(r.stdout));
    expect(out.backends.map((b: { endpoint: string }) => b.endpoint)).toEqual(['198.19.7.10:8080']);
    expect(out.skipped.map((s: { id: string }) => s.id)).toEqual(['i-0b']);
  });

  it('an unreachable endpoint is one clear line', async () => {
    const r = await elastic(['discover', '--tag', 'Role=web', '--port', '8080', '--endpoint', 'http://127.0.0.1:1'], { env });
    expect(r.exitCode).toBe(3);
    expect(String(r.stderr).trim().split('\n')).toHaveLength(1);
    expect(String(r.stdout)).toBe('');
  });
});
