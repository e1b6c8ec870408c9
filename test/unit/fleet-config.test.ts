import { describe, expect, it } from 'vitest';
import { connectOptions, parseEndpoints } from '../../src/engine/fleet/connect.js';
import { semanticDiff } from '../../src/engine/fleet/diff.js';
import { checkFleetFile, digestOf, splitHosts, textForHost } from '../../src/engine/fleet/hosts.js';
import { checkName, fleetPrefix, Keys, versionOfKey } from '../../src/engine/fleet/store.js';
import { ConfigError, parseConfig } from '../../src/engine/run/config.js';
import { UserError } from '../../src/engine/errors.js';
import { FILE } from '../fixtures/fleet/fleet-file.js';

/** Pure parts of the fleet: endpoints and credentials, key layout, hosts: overrides, semantic diff. */
const msg = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join(' | ');
    if (err instanceof UserError) return err.message;
    throw err;
  }
  return 'ok';
};

describe('fleet store: endpoints and credentials', () => {
  it.each([
    ['http://127.0.0.1:2379', ['http://127.0.0.1:2379']],
    ['http://a:1, http://b:2 ,', ['http://a:1', 'http://b:2']],
    ['https://etcd-1:2379/', ['https://etcd-1:2379']],
  ])('accepts %s', (list, want) => expect(parseEndpoints(list)).toEqual(want));

  it.each([
    ['', 'no etcd endpoint given'],
    ['127.0.0.1:2379', 'not a URL'],
    ['unix:///run/etcd.sock', 'scheme must be http or https'],
    ['http://127.0.0.1', 'needs a port'],
    ['http://u:p@127.0.0.1:2379', 'credentials in a URL'],
    ['http://127.0.0.1:2379/v3', 'no path or query'],
    ['ftp://h:1', 'scheme must be http or https'],
    ['http://a:1,https://b:2', 'mix http and https'],
    [Array.from({ length: 17 }, (_, i) => `http://h:${i + 1}`).join(','), '17 etcd endpoints given'],
  ])('refuses %j', (list, want) => expect(msg(() => parseEndpoints(list))).toContain(want));

  const files: Record<string, string> = { '/ca.pem': 'CA', '/c.pem': 'CERT', '/k.pem': 'KEY', '/pw': 'sekrit\nignored' };
  const read = (p: string) => {
    if (!(p in files)) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    return Buffer.from(files[p]!);
  };
  const opts = (flags: Record<string, string>, env: NodeJS.ProcessEnv = {}) => connectOptions(flags, env, read);

  it('takes endpoints and fleet from the environment, TLS from files, the password from a file', () => {
    const o = opts({ 'etcd-ca': '/ca.pem', 'etcd-cert': '/c.pem', 'etcd-key': '/k.pem', 'etcd-user': 'lb' }, { ELASTIC_ETCD: 'https://e:2379', ELASTIC_FLEET: 'edge', ELASTIC_ETCD_PASSWORD_FILE: '/pw' });
    expect(o.fleet).toBe('edge');
    expect(o.endpoints).toEqual(['https://e:2379']);
    expect(o.tls?.ca.toString()).toBe('CA');
    expect(o.tls?.key?.toString()).toBe('KEY');
    expect(o.auth).toEqual({ username: 'lb', password: 'sekrit' });
    expect(o.dialTimeoutMs).toBe(5000);
  });

  it('flags win over the environment; ELASTIC_ETCD_PASSWORD wins over the file', () => {
    const o = opts({ etcd: 'http://f:1', fleet: 'f' }, { ELASTIC_ETCD: 'http://e:1', ELASTIC_FLEET: 'e', ELASTIC_ETCD_USER: 'u', ELASTIC_ETCD_PASSWORD: 'envpw', ELASTIC_ETCD_PASSWORD_FILE: '/pw' });
    expect([o.endpoints[0], o.fleet, o.auth?.password]).toEqual(['http://f:1', 'f', 'envpw']);
  });

  it.each([
    [{}, {}, 'no fleet named'],
    [{ fleet: 'Bad Name' }, {}, 'invalid fleet name'],
    [{ fleet: 'f' }, {}, 'no etcd endpoint given'],
    [{ fleet: 'f', etcd: 'https://e:1', 'etcd-cert': '/c.pem' }, {}, 'needs its key'],
    [{ fleet: 'f', etcd: 'https://e:1', 'etcd-cert': '/c.pem', 'etcd-key': '/k.pem' }, {}, 'needs the CA'],
    [{ fleet: 'f', etcd: 'http://e:1', 'etcd-ca': '/ca.pem' }, {}, 'TLS files given for http://'],
    [{ fleet: 'f', etcd: 'https://e:1', 'etcd-ca': '/missing.pem' }, {}, 'cannot read the etcd CA /missing.pem: ENOENT'],
    [{ fleet: 'f', etcd: 'http://e:1', 'etcd-user': 'u' }, {}, 'no password for etcd user u'],
    [{ fleet: 'f', etcd: 'http://e:1' }, { ELASTIC_ETCD_PASSWORD: 'p' }, 'an etcd password without a user'],
    [{ fleet: 'f', etcd: 'http://e:1' }, { ELASTIC_ETCD_DIAL_TIMEOUT_MS: '10' }, 'must be 1000-60000'],
  ])('refuses %j %j', (flags, env, want) => expect(msg(() => opts(flags as Record<string, string>, env))).toContain(want));
});

describe('fleet store: names and keys', () => {
  it.each(['edge', 'lb-1', 'a', 'prod.eu_1', 'x'.repeat(63)])('accepts the name %s', (n) => expect(checkName('host', n)).toBe(n));
  it.each(['', 'A', '-a', 'a-', 'a/b', '../x', 'a b', 'x'.repeat(64), 'é'])('refuses the name %j', (n) => expect(msg(() => checkName('fleet', n))).toContain('invalid fleet name'));
  it('lays out keys under /elastic/<fleet>/ and round-trips version numbers', () => {
    expect(fleetPrefix('edge')).toBe('/elastic/edge/');
    expect(Keys.version(12)).toBe('versions/0000000012');
    expect(versionOfKey(Keys.version(12))).toBe(12);
    expect(versionOfKey('versions/12')).toBeNull();
    expect(Keys.host('lb-1')).toBe('hosts/lb-1');
  });
});


describe('hosts: one file for hosts that differ', () => {
  it('blanks the hosts: lines so the rest keeps its line numbers', () => {
    const ff = splitHosts(FILE, 'elastic.yaml');
    const lines = ff.base.split('\n');
    expect(lines.length).toBe(FILE.split('\n').length);
    expect(lines.slice(0, 12)).toEqual(FILE.split('\n').slice(0, 12));
    expect(lines.slice(12).every((l) => l === '')).toBe(true);
    expect(Object.keys(ff.hosts)).toEqual(['lb-2', 'lb-3']);
  });

  it('a host without overrides applies the file as it is; with overrides, the merged file', () => {
    const ff = splitHosts(FILE, 'elastic.yaml');
    expect(textForHost(ff, 'lb-1')).toBe(ff.base);
    const c2 = parseConfig(textForHost(ff, 'lb-2'), 'x');
    expect(c2.services.map((s) => [s.name, s.haproxy?.port])).toEqual([['web', 8081]]);
    expect(c2.metrics.prometheus?.port).toBe(9101);
    expect(c2.sources.web?.kind).toBe('static');
    expect(parseConfig(textForHost(ff, 'lb-3'), 'x').services.length).toBe(2);
    // Deterministic: the status command computes the same digest the host applied.
    expect(digestOf(textForHost(ff, 'lb-2'))).toBe(digestOf(textForHost(splitHosts(FILE, 'other.yaml'), 'lb-2')));
    expect(digestOf(textForHost(ff, 'lb-1'))).toBe(parseConfig(textForHost(ff, 'lb-1'), 'x').hash);
  });

  it('a file without hosts: is exactly what run -c parses (same hash)', () => {
    const plain = FILE.slice(0, FILE.indexOf('hosts:'));
    expect(checkFleetFile(plain, 'elastic.yaml').base.hash).toBe(parseConfig(plain, 'elastic.yaml').hash);
  });

  it.each([
    [FILE.replace('port: 8080', 'port: 0'), 'elastic.yaml:9: services[0].haproxy.port: must be 1-65535'],
    [FILE.replace('  lb-3: {}', '  lb-3: { services: { web: { haproxy: { port: 8090 } } } }'), 'elastic.yaml (hosts.lb-3): services[1].haproxy.port: 127.0.0.1:8090 is already used by services[0].haproxy.port'],
    [FILE.replace('      web: { haproxy: { port: 8081 } }', '      web: { haproxy: { port: 70000 } }'), 'elastic.yaml (hosts.lb-2): services[0].haproxy.port: must be 1-65535'],
    [FILE.replace('      admin: null', '      nope: null'), 'elastic.yaml: hosts.lb-2.services.nope: no such entry in services:'],
    [FILE.replace('  lb-3: {}', '  LB3: {}'), 'elastic.yaml:13: hosts: "LB3" is not a host name'],
    [FILE.replace('  lb-3: {}', '  lb-3: 5'), 'elastic.yaml:13: hosts: lb-3: must be a map of overrides'],
    [FILE.replace('  lb-3: {}', '  lb-3: { name: other }'), 'elastic.yaml:13: hosts: lb-3.name: cannot differ per host'],
    [`${FILE}  lb-4: { bogus: 1 }\n`, 'elastic.yaml (hosts.lb-4): bogus: unknown key'],
  ])('refuses a bad fleet file (%#)', (text, want) => expect(msg(() => checkFleetFile(text, 'elastic.yaml'))).toContain(want));
});

describe('semantic diff', () => {
  const A = `version: 1
services:
  - { name: web, sources: [web], haproxy: { port: 8080 } }
  - { name: api, sources: [web], haproxy: { port: 8081 } }
api: { port: 9000, keys: [{ access_key_id: AK, secret: s3cr3t-value-0123456789 }] }
`;
  it('compares services by name (order is no change) and reports what changed in meaning', () => {
    const B = `version: 1
services:
  - { name: api, sources: [web], haproxy: { port: 8081 } }
  - { name: web, sources: [web], haproxy: { port: 8082, mode: tcp } }
api: { port: 9000, keys: [{ access_key_id: AK, secret: s3cr3t-value-0123456789 }] }
`;
    expect(semanticDiff(A, B)).toEqual([
      { op: '+', path: 'services.web.haproxy.mode', to: '"tcp"' },
      { op: '~', path: 'services.web.haproxy.port', from: '8080', to: '8082' },
    ]);
  });

  it('never shows a secret, changed or added', () => {
    const B = A.replace('s3cr3t-value-0123456789', 'other-secret-value-9876543210');
    expect(JSON.stringify(semanticDiff(A, B))).not.toMatch(/s3cr3t|other-secret/);
    expect(JSON.stringify(semanticDiff(null, A))).not.toContain('s3cr3t');
    expect(semanticDiff(A, B)).toEqual([{ op: '~', path: 'api.keys', from: '[{"access_key_id":"AK","secret":"(secret)"}]', to: '(a secret changed)' }]);
  });

  it('adds and removes whole entries, and an identical text is no change', () => {
    expect(semanticDiff(A, A)).toEqual([]);
    const C = A.replace('  - { name: api, sources: [web], haproxy: { port: 8081 } }\n', '');
    expect(semanticDiff(A, C)).toEqual([{ op: '-', path: 'services.api' }]);
    expect(semanticDiff(C, A)[0]).toMatchObject({ op: '+', path: 'services.api' });
  });
});
