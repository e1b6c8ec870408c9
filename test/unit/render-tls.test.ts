import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certFileHost } from '../../src/engine/frontends/tls/certs.js';
import { certCovers, checkPem } from '../../src/engine/frontends/tls/pem.js';
import { parseServiceTls } from '../../src/engine/frontends/tls/tls-config.js';
import { attachTls, tlsProblem } from '../../src/engine/frontends/tls/tls-data.js';
import { routedRules } from '../../src/engine/frontends/backend-rules.js';
import { routedBinds } from '../../src/engine/frontends/routing.js';
import { TestCa } from '../support/tls-certs.js';

// TLS, the pure parts: what a certificate file is refused for, which cert dir names are hosts,
// the tls: settings and which service sets can share a TLS bind.
let dir: string;
let ca: TestCa;
let good: Awaited<ReturnType<TestCa['issue']>>;
let other: Awaited<ReturnType<TestCa['issue']>>;
let expired: Awaited<ReturnType<TestCa['issue']>>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'el-tls-unit-'));
  ca = new TestCa(dir);
  await ca.init();
  good = await ca.issue(['api.example.com', '*.api.example.com']);
  other = await ca.issue(['other.example.com']);
  expired = await ca.issue(['old.example.com'], 0);
}, 30_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('checkPem: one-line refusals', () => {
  it('accepts chain + key, and normalizes to blocks without blank lines', () => {
    const r = checkPem(`junk before\n${good.cert}\n\n${good.key}`);
    expect('info' in r && r.info.subject).toBe('CN=api.example.com');
    expect('info' in r && r.info.serial).toBe(good.serial);
    expect('info' in r && r.info.names).toEqual(['api.example.com', '*.api.example.com']);
    expect('info' in r && /\n\s*\n/.test(r.info.pem)).toBe(false);
    expect('info' in r && r.info.pem.startsWith('-----BEGIN CERTIFICATE-----')).toBe(true);
  });
  it.each([
    ['not PEM', () => 'hello', /^not PEM/],
    ['no key', () => good.cert, /^no private key/],
    ['two keys', () => good.cert + good.key + other.key, /more than one private key/],
    ['a key of another certificate', () => good.cert + other.key, /does not match the certificate/],
    ['an expired certificate', () => expired.pem, /^expired on \d{4}-/],
    ['not valid yet', () => good.pem, /^not valid before/, new Date(Date.now() - 86_400_000)],
    ['a broken certificate block', () => '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' + good.key, /not a valid X\.509/],
    ['an encrypted key', () => good.cert + '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n', /encrypted/],
  ])('%s', (_what, text, reason, now?: Date) => {
    const r = checkPem(text(), now);
    expect('error' in r && r.error).toMatch(reason);
    expect('error' in r && r.error).not.toMatch(/\n|MII/);
  });
});

describe('cert dir names are untrusted', () => {
  it.each([
    ['api.example.com.pem', { host: 'api.example.com' }],
    ['_.example.com.pem', { host: '*.example.com' }],
    ['default.pem', { isDefault: true }],
    ['localhost.pem', { host: 'localhost' }],
    ['api.example.com.key', null],
    ['.api.example.com.pem.swp', null],
    ['.hidden.pem', null],
    ['..pem', null],
    ['README', null],
  ])('%s', (name, want) => expect(certFileHost(name)).toEqual(want));
  it.each(['a;b.pem', '{{x}}.pem', '$host.pem', 'a b.pem', 'a\nb.pem', 'API.example.com.pem', `${'a'.repeat(300)}.pem`, '_.com.pem', '*.example.com.pem', 'a..b.pem'])('%j is refused', (name) => {
    expect(certFileHost(name)).toHaveProperty('error');
  });
});

it('certCovers: exact names and one-label wildcards', () => {
  expect(certCovers(['api.example.com'], 'api.example.com')).toBe(true);
  expect(certCovers(['*.example.com'], 'www.example.com')).toBe(true);
  expect(certCovers(['*.example.com'], 'a.b.example.com')).toBe(false);
  expect(certCovers(['*.example.com'], '*.example.com')).toBe(true);
  expect(certCovers(['api.example.com'], 'www.example.com')).toBe(false);
});

describe('tls: settings', () => {
  it.each([
    [true, { redirect: false, hstsMaxAge: 0 }],
    [{ redirect: true, hsts: true }, { redirect: true, hstsMaxAge: 31_536_000 }],
    [{ hsts: 600 }, { redirect: false, hstsMaxAge: 600 }],
    [undefined, undefined],
    [false, undefined],
  ])('%j', (raw, want) => expect(parseServiceTls(raw)).toEqual(want));
  it.each([[{ hsts: -1 }], [{ hsts: 63_072_001 }], [{ hsts: 'x' }], [{ redirect: 'yes' }], [{ cert: 3 }], [{ nope: 1 }], ['on']])('%j is refused', (raw) => {
    expect(() => parseServiceTls(raw)).toThrow();
  });
  const b = (port: number) => ({ address: '127.0.0.1', port });
  const tls = { bind: b(443), certDir: '/c' };
  it.each([
    ['tls without a TLS bind', [{ name: 'a', bind: b(80), mode: 'http', tls: { redirect: false, hstsMaxAge: 0 } }], undefined, /no TLS bind/],
    ['tls services on two binds', [{ name: 'a', bind: b(80), mode: 'http', tls: { redirect: false, hstsMaxAge: 0 } }, { name: 'b', bind: b(81), mode: 'http', tls: { redirect: false, hstsMaxAge: 0 } }], tls, /different binds/],
    ['a tcp service', [{ name: 'a', bind: b(80), mode: 'tcp', tls: { redirect: false, hstsMaxAge: 0 } }], tls, /tcp service/],
    ['the TLS bind is a service bind', [{ name: 'a', bind: b(443), mode: 'http' }], tls, /also a service's bind/],
  ])('%s is refused', (_what, specs, t, msg) => expect(tlsProblem(specs, t)).toMatch(msg));
  it('one TLS bind for the services of one bind is fine', () => {
    expect(tlsProblem([{ name: 'a', bind: b(80), mode: 'http', tls: { redirect: true, hstsMaxAge: 0 } }, { name: 'c', bind: b(80), mode: 'http' }], tls)).toBeNull();
  });
});

describe('attachTls: the TLS bind in the template data', () => {
  const bind = { address: '127.0.0.1', port: 80 };
  const entry = (key: string, hosts: string[]) => ({ key, source: `/src/${key}.pem`, hosts, copy: `/run/certs/${key}.pem`, info: { subject: '', names: [], notAfter: '', serial: '', digest: key, pem: '' } });
  const set = { entries: [entry('default', []), entry('host_api.example.com', ['api.example.com']), entry('host__.example.com', ['*.example.com']), entry('host_other.org', ['other.org'])], crtList: '/run/certs/crt-list', crtListText: 'x', changed: [], listChanged: false };
  const specs = [
    { name: 'api', bind, mode: 'http', routes: { hosts: ['api.example.com'], paths: [], stripPrefix: false }, tls: { redirect: true, hstsMaxAge: 600 } },
    { name: 'wild', bind, mode: 'http', routes: { hosts: ['*.example.com'], paths: [], stripPrefix: false } },
    { name: 'web', bind, mode: 'http', isDefaultService: true, tls: { redirect: false, hstsMaxAge: 0 } },
  ];
  it('redirects and HSTS per service; a certificate per host; TLS-only servers for names no route declares', () => {
    const [b] = attachTls(routedBinds(specs, new Set()), specs, set, { bind: { address: '127.0.0.1', port: 443 }, certDir: '/c' }, false);
    const t = b!.tls!;
    // HAProxy: redirect and HSTS are the service's backend's own rules; only a strip needs the route.
    expect(routedRules([b!])).toEqual({
      api: { redirectPort: 443, hsts: 'max-age=600', strips: [] },
      wild: { redirectPort: null, hsts: null, strips: [] },
      web: { redirectPort: null, hsts: null, strips: [] },
    });
    expect(t.defaultCert).toBe('/run/certs/default.pem');
    expect(t.certs).toEqual({ 'api.example.com': '/run/certs/host_api.example.com.pem', '*.example.com': '/run/certs/host__.example.com.pem' });
    // other.org: no route declares it; its requests take the default service (no routes of a host).
    expect(t.sniServers.map((s) => [s.host, s.cert, s.routes.map((r) => r.service), s.defaultRoute?.service])).toEqual([['other.org', '/run/certs/host_other.org.pem', [], 'web']]);
  });
  it('no TLS options: every bind has tls null and routes neither redirect nor send HSTS', () => {
    const [b] = attachTls(routedBinds(specs, new Set()), specs, undefined, undefined, false);
    expect(b!.tls).toBeNull();
    expect(b!.allHosts.flatMap((h) => h.routes).every((r) => (r as { redirect?: boolean }).redirect === false)).toBe(true);
  });
});
