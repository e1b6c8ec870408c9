import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
// The SDK's own standard retry strategy, only with a short delay so throttling tests run fast.
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import { Ec2Provider, MAX_POLL_BACKOFF, type Ec2ProviderOptions } from '../../src/engine/discovery/ec2/provider.js';
import { watchBackends, type WatchUpdate } from '../../src/engine/discovery/watch.js';
import { ExitCode, UserError } from '../../src/engine/errors.js';
import { startEc2Server, type Ec2TestServer, type FakeInstance } from '../support/ec2-server.js';

/**
 * The real @aws-sdk/client-ec2 against a real EC2 Query API server on 127.0.0.1. Nothing is
 * mocked: requests are signed, serialized, sent, parsed and retried by the SDK itself.
 */

// Everything the SDK reads from the environment; saved, pinned for the run, restored.
const AWS_ENV = [
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE',
  'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE', 'AWS_EC2_METADATA_DISABLED', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_EC2',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN',
  'AWS_MAX_ATTEMPTS', 'AWS_RETRY_MODE',
];
const saved = new Map(AWS_ENV.map((k) => [k, process.env[k]]));

beforeEach(() => {
  for (const k of AWS_ENV) delete process.env[k];
  // Never read the host's ~/.aws or ask an instance metadata service.
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/elastic-test/credentials';
  process.env.AWS_CONFIG_FILE = '/nonexistent/elastic-test/config';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_ACCESS_KEY_ID = 'AKIAELASTICTEST00001';
  process.env.AWS_SECRET_ACCESS_KEY = 'elastic-test-secret';
  process.env.AWS_REGION = 'us-east-1';
});
afterEach(() => {
  for (const [k, v] of saved) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

const web = [{ key: 'Role', value: 'web' }];
const fast = () => new ConfiguredRetryStrategy(4, () => 5);

function fixture(): FakeInstance[] {
  return [
    { instanceId: 'i-00000000000000001', privateIp: '198.18.5.1', publicIp: '198.19.5.1', tags: { Role: 'web', Name: 'web-1' } },
    { instanceId: 'i-00000000000000002', privateIp: '198.18.5.2', tags: { Role: 'web' }, state: 'stopped' },
    { instanceId: 'i-00000000000000003', privateIp: '198.18.5.3', tags: { Role: 'web', 'elastic.service': 'checkout' } },
    { instanceId: 'i-00000000000000004', privateIp: '198.18.5.4', tags: { Role: 'db' } },
    { instanceId: 'i-00000000000000005', privateIp: '198.18.5.5', tags: { Role: 'web' }, state: 'pending' },
    { instanceId: 'i-00000000000000006', privateIp: '198.18.5.6', tags: { Role: 'web' }, reservationId: 'r-shared' },
    { instanceId: 'i-00000000000000007', privateIp: '198.18.5.7', tags: { Role: 'web' }, reservationId: 'r-shared' },
  ];
}

let server: Ec2TestServer;
const providers: Ec2Provider[] = [];
beforeAll(async () => {
  server = await startEc2Server();
});
afterAll(async () => {
  await server.stop();
});
beforeEach(() => {
  server.instances = fixture();
  server.pageSize = Number.POSITIVE_INFINITY;
  server.ignoreStateFilter = false;
  server.requests.length = 0;
});
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
});

function provider(over: Partial<Ec2ProviderOptions> = {}): Ec2Provider {
  const p = new Ec2Provider({
    selector: { tags: web, port: 8080, addressType: 'private', service: 'web' },
    endpoint: server.url,
    retryStrategy: fast(),
    ...over,
  });
  providers.push(p);
  return p;
}

async function failure(p: Ec2Provider): Promise<UserError> {
  const err = await p.list().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

describe('ec2 provider: listing through the real SDK', () => {
  it('sends the running-state and tag filters, signed for the region', async () => {
    const p = provider({ region: 'eu-west-1', selector: { tags: [...web, { key: 'Env', value: 'prod' }, { key: 'Role', value: 'api' }], port: 80, addressType: 'private', service: 'web' } });
    await p.list();
    const [req] = server.requestsFor('DescribeInstances');
    expect(req?.filters).toEqual([
      { name: 'instance-state-name', values: ['running'] },
      { name: 'tag:Role', values: ['web', 'api'] },
      { name: 'tag:Env', values: ['prod'] },
    ]);
    expect(req?.params.MaxResults).toBe('1000');
    expect(req?.authorization).toContain('/eu-west-1/ec2/aws4_request');
  });

  it('translates instances into backends', async () => {
    const backends = await provider().list();
    expect(backends.map((b) => [b.id, b.name, b.service, b.address, b.port])).toEqual([
      ['ec2:i-00000000000000001', 'web-1', 'web', '198.18.5.1', 8080],
      ['ec2:i-00000000000000003', 'i-00000000000000003', 'checkout', '198.18.5.3', 8080],
      ['ec2:i-00000000000000006', 'i-00000000000000006', 'web', '198.18.5.6', 8080],
      ['ec2:i-00000000000000007', 'i-00000000000000007', 'web', '198.18.5.7', 8080],
    ]);
    expect(backends[0]).toMatchObject({ source: 'ec2', state: 'running', health: 'none', image: 'ami-0123456789abcdef0', since: '2024-05-01T10:00:00.000Z', labels: { Role: 'web', Name: 'web-1' } });
  });

  it('follows NextToken through every page', async () => {
    server.pageSize = 2;
    server.ignoreStateFilter = true; // all 6 Role=web instances come back: 3 pages
    const backends = await provider().list();
    const reqs = server.requestsFor('DescribeInstances');
    expect(reqs.map((r) => r.params.NextToken)).toEqual([undefined, 'page-2', 'page-4']);
    expect(reqs.every((r) => r.filters.length === 2)).toBe(true); // filters repeated on every page
    expect(backends.map((b) => b.id)).toEqual(['ec2:i-00000000000000001', 'ec2:i-00000000000000003', 'ec2:i-00000000000000006', 'ec2:i-00000000000000007']);
  });

  it('seven instances, page size 2, no tag filter: four requests, every running one', async () => {
    server.pageSize = 2;
    server.ignoreStateFilter = true;
    const backends = await provider({ selector: { tags: [], port: 80, addressType: 'private', service: 'all' } }).list();
    expect(server.requestsFor('DescribeInstances')).toHaveLength(4);
    expect(backends.map((b) => b.address)).toEqual(['198.18.5.1', '198.18.5.3', '198.18.5.4', '198.18.5.6', '198.18.5.7']);
  });

  it('excludes non-running instances even when the server ignores the state filter', async () => {
    server.ignoreStateFilter = true;
    const backends = await provider().list();
    expect(backends.map((b) => b.id)).not.toContain('ec2:i-00000000000000002');
    expect(backends.map((b) => b.id)).not.toContain('ec2:i-00000000000000005');
    expect(backends).toHaveLength(4);
  });

  it('--public uses the public IP and reports instances without one', async () => {
    const p = provider({ selector: { tags: web, port: 443, addressType: 'public', service: 'web' } });
    const backends = await p.list();
    expect(backends.map((b) => `${b.address}:${b.port}`)).toEqual(['198.19.5.1:443']);
    expect(p.skipped).toEqual([
      { id: 'i-00000000000000003', reason: 'no public IP address' },
      { id: 'i-00000000000000006', reason: 'no public IP address' },
      { id: 'i-00000000000000007', reason: 'no public IP address' },
    ]);
  });

  it('hostile tags survive the SDK as data and are dropped before they reach labels', async () => {
    server.instances = [{ instanceId: 'i-0000000000000000a', privateIp: '198.18.5.10', tags: { Role: 'web', Name: 'x\u001b[2Jy', Note: 'a\nb' } }];
    const [b] = await provider().list();
    expect(b?.name).toBe('x?[2Jy');
    expect(b?.labels).toEqual({ Role: 'web' });
  });

  it('honours AWS_ENDPOINT_URL_EC2 and AWS_DEFAULT_REGION when no flags are given', async () => {
    process.env.AWS_ENDPOINT_URL_EC2 = server.url;
    delete process.env.AWS_REGION;
    const p = provider({ endpoint: undefined, env: { AWS_DEFAULT_REGION: 'eu-north-1' } });
    expect(await p.list()).toHaveLength(4);
    expect(server.requests[0]?.authorization).toContain('/eu-north-1/ec2/aws4_request');
  });

  it('stops when the signal aborts, with an abort (not a UserError)', async () => {
    const err = await provider().list(AbortSignal.abort()).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(UserError);
    expect((err as Error).name).toBe('AbortError');
  });
});

describe('ec2 provider: errors an operator can act on', () => {
  it.each([
    ['AuthFailure', 401, 'AWS was not able to validate the provided access credentials'],
    ['UnauthorizedOperation', 403, 'You are not authorized to perform this operation.'],
  ])('%s -> permission, naming ec2:DescribeInstances, not retried', async (code, status, message) => {
    server.failNext(1, { status, code, message });
    const err = await failure(provider());
    expect(err.exitCode).toBe(ExitCode.permission);
    expect(err.message).toBe(`EC2 denied ec2:DescribeInstances (${code}): ${message}`);
    expect(err.hint).toContain('ec2:DescribeInstances');
    expect(server.requests).toHaveLength(1);
  });

  it('RequestLimitExceeded beyond the retries -> unavailable, says throttled, backs off the poll', async () => {
    const p = provider();
    server.failNext(4, { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' });
    const err = await failure(p);
    expect(err.exitCode).toBe(ExitCode.unavailable);
    expect(err.message).toBe('throttled by EC2 after 3 retries (RequestLimitExceeded)');
    expect(err.hint).toContain('--interval');
    expect(server.requests).toHaveLength(4);
    expect(server.pendingFaults).toBe(0);
    expect(p.pollMs).toBe(p.intervalMs * 2);
    for (const factor of [4, 8, 8]) {
      server.failNext(4, { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' });
      await failure(p);
      expect(p.pollMs).toBe(p.intervalMs * Math.min(factor, MAX_POLL_BACKOFF));
    }
    await p.list();
    expect(p.pollMs).toBe(p.intervalMs);
  });

  it('one throttled answer is retried by the default (production) strategy and succeeds', async () => {
    server.failNext(1, { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' });
    expect(await provider({ retryStrategy: undefined }).list()).toHaveLength(4);
    expect(server.requests).toHaveLength(2);
  });

  it.each([
    ['other codes: failure, printable', 1, 400, 'InvalidParameterValue', 'bad\u001b[31m value\nsecond line', ExitCode.failure, 'EC2 answered InvalidParameterValue: bad?[31m value?second line'],
    ['bad keys: permission', 1, 401, 'InvalidClientTokenId', 'The security token is invalid.', ExitCode.permission, 'EC2 rejected the AWS credentials (InvalidClientTokenId): The security token is invalid.'],
    ['server errors, retried first: unavailable', 4, 500, 'InternalError', 'oops', ExitCode.unavailable, '%URL% failed (InternalError, HTTP 500): oops'],
  ])('%s', async (_, count, status, code, message, exitCode, want) => {
    server.failNext(count, { status, code, message });
    const err = await failure(provider());
    expect(err.exitCode).toBe(exitCode);
    expect(err.message).toBe(want.replace('%URL%', `the EC2 endpoint ${server.url}`));
    expect(server.requests).toHaveLength(count);
  });

  it('an unreachable endpoint -> unavailable', async () => {
    const closed = await startEc2Server();
    const url = closed.url;
    await closed.stop(); // nothing listens on this loopback port now
    const err = await failure(provider({ endpoint: url }));
    expect(err.exitCode).toBe(ExitCode.unavailable);
    expect(err.message).toBe(`cannot reach the EC2 endpoint ${url} (ECONNREFUSED)`);
  });

  it.each([
    ['an HTML page', 200, '<html><body>proxy login</body></html>', 'no reservationSet'],
    ['an empty 200', 200, '', 'no reservationSet'],
    ['garbage', 200, 'not xml at all', 'unreadable answer'],
    ['a 404 answer', 404, '', 'HTTP 404'],
  ])('an endpoint that is not EC2 (%s) -> unavailable, never an empty set', async (_, status, body, what) => {
    const other = await startEc2Server();
    other.actions.set('DescribeInstances', () => body);
    if (status !== 200) other.failNext(1, { status, code: 'NotFound', message: 'x' });
    try {
      const err = await failure(provider({ endpoint: other.url }));
      expect(err.exitCode).toBe(ExitCode.unavailable);
      expect(err.message).toBe(`the EC2 endpoint ${other.url} did not answer as the EC2 API (${what})`);
    } finally {
      await other.stop();
    }
  });

  it('no credentials anywhere -> permission, hint names the ways to provide them', async () => {
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    const err = await failure(provider());
    expect(err.exitCode).toBe(ExitCode.permission);
    expect(err.message).toBe('no AWS credentials found');
    expect(err.hint).toMatch(/AWS_ACCESS_KEY_ID.*AWS_PROFILE.*IAM role/);
    expect(server.requests).toHaveLength(0);
  });

  it('an unknown --profile -> permission, naming the profile', async () => {
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    const err = await failure(provider({ profile: 'no-such-profile' }));
    expect(err.exitCode).toBe(ExitCode.permission);
    expect(err.message).toBe('no AWS credentials for profile "no-such-profile"');
  });

  it('no region anywhere -> usage, hint --region or AWS_REGION', async () => {
    delete process.env.AWS_REGION;
    const err = await failure(provider({ env: {} }));
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.hint).toBe('pass --region or set AWS_REGION');
    expect(server.requests).toHaveLength(0);
  });

  it.each([
    [{ endpoint: 'ftp://127.0.0.1:1' }, 'invalid EC2 endpoint "ftp://127.0.0.1:1"'],
    [{ endpoint: 'not a url' }, 'invalid EC2 endpoint "not a url"'],
    [{ region: 'us-east-1\u001b[2J' }, 'invalid AWS region "us-east-1?[2J"'],
    [{ intervalMs: 0 }, 'invalid EC2 poll interval 0 ms'],
  ] as Array<[Partial<Ec2ProviderOptions>, string]>)('bad options are usage errors before any request: %o', (over, message) => {
    expect(() => provider(over)).toThrow(expect.objectContaining({ message, exitCode: ExitCode.usage }));
  });
});

describe('ec2 provider: watching', () => {
  it('watchBackends yields an update when instances change between polls', async () => {
    const p = provider({ intervalMs: 50 });
    const ac = new AbortController();
    const guard = setTimeout(() => ac.abort(), 10_000);
    const updates: WatchUpdate[] = [];
    try {
      for await (const u of watchBackends(p, { signal: ac.signal })) {
        updates.push(u);
        if (updates.length === 1) {
          server.instances.push({ instanceId: 'i-00000000000000008', privateIp: '198.18.5.8', tags: { Role: 'web' } });
          server.instances = server.instances.filter((i) => i.instanceId !== 'i-00000000000000001');
        } else {
          // Abort before leaving: watchBackends' cleanup waits for its hint consumer, which
          // only stops on abort (a bare `break` would hang here until the guard fires).
          ac.abort();
          break;
        }
      }
    } finally {
      clearTimeout(guard);
      ac.abort();
    }
    expect(updates).toHaveLength(2);
    expect(updates[0]).toMatchObject({ reason: 'initial' });
    expect(updates[0]?.backends).toHaveLength(4);
    expect(updates[1]?.reason).toBe('poll');
    expect(updates[1]?.changes.map((c) => [c.type, c.backend.id])).toEqual([
      ['removed', 'ec2:i-00000000000000001'],
      ['added', 'ec2:i-00000000000000008'],
    ]);
  });

  it('changes() ticks at the poll period and ends quietly on abort', async () => {
    const p = provider({ intervalMs: 20 });
    const ac = new AbortController();
    const reasons: string[] = [];
    for await (const h of p.changes(ac.signal)) {
      reasons.push(h.reason);
      if (reasons.length === 3) ac.abort();
    }
    expect(reasons).toEqual(['connected', 'poll', 'poll']);
  });
});
