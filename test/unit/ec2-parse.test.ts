import { describe, expect, it } from 'vitest';
import type { Instance } from '@aws-sdk/client-ec2';
import { parseInstance, type Ec2Selector } from '../../src/engine/discovery/ec2/parse.js';
import { ec2Filters } from '../../src/engine/discovery/ec2/provider.js';

const selector: Ec2Selector = { tags: [{ key: 'Role', value: 'web' }], port: 8080, addressType: 'private', service: 'web' };
const pub: Ec2Selector = { ...selector, addressType: 'public' };

/** A running instance as the SDK hands it over; each row overrides what it is about. */
function inst(over: Partial<Instance> = {}): Instance {
  return {
    InstanceId: 'i-0123456789abcdef0',
    ImageId: 'ami-0fedcba9876543210',
    State: { Code: 16, Name: 'running' },
    PrivateIpAddress: '198.18.5.10',
    PublicIpAddress: '198.19.7.20',
    LaunchTime: new Date('2024-05-01T10:00:00Z'),
    Tags: [
      { Key: 'Name', Value: 'web-1' },
      { Key: 'Role', Value: 'web' },
    ],
    ...over,
  };
}

const expected = {
  id: 'ec2:i-0123456789abcdef0',
  name: 'web-1',
  service: 'web',
  source: 'ec2',
  address: '198.18.5.10',
  port: 8080,
  state: 'running',
  health: 'none',
  labels: { Name: 'web-1', Role: 'web' },
  image: 'ami-0fedcba9876543210',
  since: '2024-05-01T10:00:00.000Z',
};

describe('parseInstance: which instances are candidates', () => {
  it.each([
    ['pending', { State: { Code: 0, Name: 'pending' } }],
    ['stopping', { State: { Code: 64, Name: 'stopping' } }],
    ['stopped', { State: { Code: 80, Name: 'stopped' } }],
    ['shutting-down', { State: { Code: 32, Name: 'shutting-down' } }],
    ['terminated', { State: { Code: 48, Name: 'terminated' } }],
    ['no state at all', { State: undefined }],
  ] as Array<[string, Partial<Instance>]>)('%s: excluded (null)', (_, over) => {
    expect(parseInstance(inst(over), selector)).toBeNull();
  });

  it('running: a full backend', () => {
    expect(parseInstance(inst(), selector)).toEqual({ ok: true, backend: expected });
  });
});

describe('parseInstance: addresses', () => {
  it.each([
    ['private by default', selector, {}, { ok: true, address: '198.18.5.10' }],
    ['public with --public', pub, {}, { ok: true, address: '198.19.7.20' }],
    ['private missing', selector, { PrivateIpAddress: undefined }, { ok: false, reason: 'no private IP address' }],
    ['public missing', pub, { PublicIpAddress: undefined }, { ok: false, reason: 'no public IP address' }],
    ['public empty', pub, { PublicIpAddress: '' }, { ok: false, reason: 'no public IP address' }],
    ['not an IP', selector, { PrivateIpAddress: 'web.internal' }, { ok: false, reason: 'invalid private IP address "web.internal"' }],
    ['hostile address', pub, { PublicIpAddress: '198.18.5.10\n\u001b[2J' }, { ok: false, reason: 'invalid public IP address "198.18.5.10??[2J"' }],
  ] as Array<[string, Ec2Selector, Partial<Instance>, { ok: boolean; address?: string; reason?: string }]>)('%s', (_, sel, over, want) => {
    const r = parseInstance(inst(over), sel);
    expect(r?.ok).toBe(want.ok);
    if (r?.ok) expect(r.backend.address).toBe(want.address);
    else expect(r).toEqual({ ok: false, id: 'i-0123456789abcdef0', reason: want.reason });
  });

  it('skips an instance whose id could not be ours, without echoing control characters', () => {
    expect(parseInstance(inst({ InstanceId: 'i-1\u001b[31m' }), selector)).toEqual({ ok: false, id: 'i-1?[31m', reason: 'invalid instance id' });
    expect(parseInstance(inst({ InstanceId: undefined }), selector)).toEqual({ ok: false, id: '(none)', reason: 'invalid instance id' });
  });
});

describe('parseInstance: tags are untrusted data', () => {
  const tagged = (...tags: Array<[string | undefined, string | undefined]>) =>
    parseInstance(inst({ Tags: tags.map(([Key, Value]) => ({ Key, Value })) }), selector);

  it.each([
    ['newline in a value', ['Owner', 'ops\nrm -rf /'], false],
    ['ESC in a value', ['Owner', 'a\u001b[31mred'], false],
    ['ESC in a key', ['Own\u001ber', 'ops'], false],
    ['C1 control in a value', ['Owner', 'a\u009bb'], false],
    ['value over 256 characters', ['Owner', 'x'.repeat(257)], false],
    ['key over 128 characters', ['k'.repeat(129), 'v'], false],
    ['no key', [undefined, 'v'], false],
    ['printable unicode', ['Owner', 'équipe web 🚀'], true],
    ['empty value', ['Owner', ''], true],
    ['value of exactly 256', ['Owner', 'y'.repeat(256)], true],
  ] as Array<[string, [string | undefined, string | undefined], boolean]>)('%s: kept=%s', (_, [k, v], kept) => {
    const r = tagged(['Role', 'web'], [k, v]);
    if (!r?.ok) throw new Error('expected a backend');
    expect(r.backend.labels).toEqual(kept ? { Role: 'web', [k!]: v } : { Role: 'web' });
  });

  it('a hostile Name tag is shown printable and kept out of labels', () => {
    const r = tagged(['Name', 'web\u001b]0;owned\u0007\nline2']);
    if (!r?.ok) throw new Error('expected a backend');
    expect(r.backend.name).toBe('web?]0;owned??line2');
    expect(r.backend.labels).toEqual({});
  });

  it.each([
    ['no Name tag: the instance id', [['Role', 'web']], 'i-0123456789abcdef0'],
    ['empty Name tag: the instance id', [['Name', '']], 'i-0123456789abcdef0'],
    ['Name tag', [['Name', 'api-2']], 'api-2'],
  ] as Array<[string, Array<[string, string]>, string]>)('name from %s', (_, tags, name) => {
    const r = tagged(...tags);
    expect(r?.ok && r.backend.name).toBe(name);
  });

  it.each([
    ['valid elastic.service tag wins', 'checkout', 'checkout'],
    ['dotted and dashed identifier', 'shop.api-v2', 'shop.api-v2'],
    ['not an identifier: selector service', 'bad service!', 'web'],
    ['leading dash: selector service', '-x', 'web'],
    ['control characters: selector service', 'api\n', 'web'],
    ['empty: selector service', '', 'web'],
  ])('%s', (_, tag, service) => {
    const r = tagged(['elastic.service', tag]);
    expect(r?.ok && r.backend.service).toBe(service);
  });
});

describe('parseInstance: other fields', () => {
  it('missing launch time and image do not drop a running instance', () => {
    const r = parseInstance(inst({ LaunchTime: undefined, ImageId: undefined }), selector);
    expect(r).toEqual({ ok: true, backend: { ...expected, image: undefined, since: '1970-01-01T00:00:00.000Z' } });
  });

  it('port always comes from the selector', () => {
    const r = parseInstance(inst(), { ...selector, port: 443 });
    expect(r?.ok && r.backend.port).toBe(443);
  });
});

describe('ec2Filters', () => {
  it.each([
    ['no tags: running only', [], [{ Name: 'instance-state-name', Values: ['running'] }]],
    [
      'one filter per key, in flag order',
      [{ key: 'Role', value: 'web' }, { key: 'Env', value: 'prod' }],
      [
        { Name: 'instance-state-name', Values: ['running'] },
        { Name: 'tag:Role', Values: ['web'] },
        { Name: 'tag:Env', Values: ['prod'] },
      ],
    ],
    [
      'same key twice: either value (EC2 ORs values, ANDs filters)',
      [{ key: 'Role', value: 'web' }, { key: 'Role', value: 'api' }, { key: 'Role', value: 'web' }],
      [
        { Name: 'instance-state-name', Values: ['running'] },
        { Name: 'tag:Role', Values: ['web', 'api'] },
      ],
    ],
  ])('%s', (_, tags, want) => {
    expect(ec2Filters(tags)).toEqual(want);
  });
});
