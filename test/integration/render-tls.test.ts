import { execa } from 'execa';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { LineReader } from '../support/lines.js';
import { RenderRuns } from '../support/render-runs.js';
import { NamedBackends, getWithHost } from '../support/route-backends.js';
import { TestCa, curlTls, replaceFile, servedCert } from '../support/tls-certs.js';

// Issue 16, TLS: certificates from files, SNI, HTTP -> HTTPS redirect, HSTS, rotation without a
// reload (HAProxy runtime API; nginx graceful reload) under wrk over TLS, and refusals, through
// the built binary against real HAProxy 2.6 and nginx 1.22, with a CA made here by openssl.
// Ports (this area's range 25800-25899): backends 25810-25814; haproxy 25800 (http) / 25801
// (https); nginx 25802 / 25803.
const BACKENDS = { api: 25810, apiv2: 25811, shop: 25812, wild: 25813, web: 25814 };
const PROXIES = [
  { proxy: 'haproxy', http: 25800, https: 25801 },
  { proxy: 'nginx', http: 25802, https: 25803 },
] as const;

const backends = new NamedBackends();
const runs = new RenderRuns();
let dir: string;
let ca: TestCa;
let certs: Record<'api' | 'wild' | 'shop' | 'local' | 'def', Awaited<ReturnType<TestCa['issue']>>>;

beforeAll(async () => {
  dir = await runs.init('el-tls-');
  ca = new TestCa(dir);
  await ca.init();
  certs = {
    api: await ca.issue(['api.example.com']),
    wild: await ca.issue(['*.example.com']),
    shop: await ca.issue(['shop.example.com']),
    local: await ca.issue(['localhost']),
    def: await ca.issue(['default.test']),
  };
  await backends.start(BACKENDS);
}, 60_000);

afterAll(async () => {
  await runs.cleanup();
  await backends.stop();
});

const svc = (name: keyof typeof BACKENDS, port: number, extra: string) => `  - name: ${name}\n    bind: 127.0.0.1:${port}\n    select: { backend: ["127.0.0.1:${BACKENDS[name]}"] }\n${extra}`;

describe.each(PROXIES)('TLS from certificate files: $proxy', ({ proxy, http, https }) => {
  const instance = `tls-${proxy[0]}`;
  let certDir: string;
  let out: LineReader;
  let err: LineReader;
  const reloads = async () => (await new HaproxyProcess({ config: '', masterSocket: join(runs.runDir(instance), 'haproxy-master.sock'), pidFile: '' }).showProc())?.reloads;

  beforeAll(async () => {
    certDir = join(dir, `${proxy}-certs`);
    await mkdir(certDir);
    await writeFile(join(certDir, 'api.example.com.pem'), certs.api.pem);
    await writeFile(join(certDir, '_.example.com.pem'), certs.wild.pem);
    await writeFile(join(certDir, 'localhost.pem'), certs.local.pem);
    await writeFile(join(certDir, 'default.pem'), certs.def.pem);
    await writeFile(join(dir, `${proxy}-shop.pem`), certs.shop.pem);
    const file = join(dir, `${instance}.yaml`);
    await writeFile(file, [
      `tls_bind: 127.0.0.1:${https}`,
      `cert_dir: ${certDir}`,
      'default_service: web',
      'services:',
      svc('api', http, '    hosts: [api.example.com]\n    tls: { redirect: true, hsts: 600 }\n'),
      svc('apiv2', http, '    hosts: [api.example.com]\n    paths: [/v2]\n    strip_prefix: true\n    tls: { redirect: true }\n'),
      svc('shop', http, `    hosts: [shop.example.com]\n    tls: { cert: ${join(dir, `${proxy}-shop.pem`)} }\n`),
      svc('wild', http, '    hosts: ["*.example.com"]\n    tls: true\n'),
      svc('web', http, '    tls: true\n'),
    ].join('\n'));
    const child = runs.start(instance, proxy, ['--proxy', proxy, '--config', file, '--start', '--watch', '--wait', '50ms:1s']);
    out = new LineReader(child.stdout!);
    err = new LineReader(child.stderr!);
    await out.next((l) => /started/.test(l), `${proxy} started`, 20_000);
  }, 60_000);

  it('three sites, a path split and a default on one TLS bind: routes, and SNI picks each certificate', async () => {
    // [host, path, body, served certificate's CN]
    const cases: Array<[string, string, string, string]> = [
      ['api.example.com', '/x', 'api /x', 'api.example.com'],
      ['api.example.com', '/v2/users', 'apiv2 /users', 'api.example.com'],
      ['shop.example.com', '/cart', 'shop /cart', 'shop.example.com'], // its own tls.cert file
      ['www.example.com', '/', 'wild /', '*.example.com'], // _.example.com.pem
      ['localhost', '/', 'web /', 'localhost'], // a cert dir host served by the default service
      ['default.test', '/', 'web /', 'default.test'], // default.pem
    ];
    for (const [host, path, body, cn] of cases) {
      const r = await curlTls(host, https, path, ca.caPem);
      expect(`${r.status} ${r.body}`, `${host}${path}`).toBe(`200 ${body}`);
      expect(r.subject, `${host}: served certificate`).toBe(`CN=${cn}`);
    }
    // A name no certificate has gets the default certificate.
    expect((await servedCert(https, 'other.org')).subject).toMatch(/CN ?= ?default\.test/);
  });

  it('HTTP -> HTTPS redirect only for the services that ask; HSTS only where asked', async () => {
    // To the TLS bind's port (not 443 here), the Host's own port and case dropped, query kept.
    for (const host of ['api.example.com', 'API.Example.com:80']) {
      const red = await execa('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-H', `Host: ${host}`, `http://127.0.0.1:${http}/v2/a?b=1`]);
      expect(red.stdout, host).toBe(`301 https://api.example.com:${https}/v2/a?b=1`);
    }
    const plain = await getWithHost(http, 'www.example.com', '/p');
    expect(`${plain.status} ${plain.body}`).toBe('200 wild /p');
    expect((await curlTls('api.example.com', https, '/', ca.caPem)).headers).toMatch(/strict-transport-security: max-age=600/i);
    expect((await curlTls('www.example.com', https, '/', ca.caPem)).headers).not.toMatch(/strict-transport-security/i);
  });

  it('a changed certificate file is served under wrk over TLS (new handshakes), 0 failed requests; HAProxy without a reload', async () => {
    const before = await reloads();
    const wrk = execa('wrk', ['-t1', '-c4', '-d9s', '--timeout', '2s', '-H', 'Connection: close', `https://localhost:${https}/`], { reject: false, timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 1000));
    const next = await ca.issue(['localhost']);
    await replaceFile(join(certDir, 'localhost.pem'), next.pem);
    const t0 = Date.now();
    // Up to 7 s (a loaded CI machine), still inside wrk's 9 s: the rotation happens under load.
    while (Date.now() - t0 < 7000 && (await servedCert(https, 'localhost')).serial !== next.serial) await new Promise((r) => setTimeout(r, 50));
    expect((await servedCert(https, 'localhost')).serial).toBe(next.serial);
    const w = await wrk;
    expect(w.exitCode, w.stderr).toBe(0);
    const requests = Number(/(\d+) requests in/.exec(w.stdout)?.[1] ?? 0);
    expect(requests, w.stdout).toBeGreaterThan(50);
    expect(w.stdout, 'wrk: no socket errors, no non-2xx').not.toMatch(/Socket errors|Non-2xx/);
    const curl = await curlTls('localhost', https, '/', ca.caPem);
    expect(curl.status).toBe(200);
    if (proxy === 'haproxy') {
      expect(await reloads(), 'HAProxy reload counter').toBe(before);
      await err.next((l) => /localhost\.pem in force without a reload/.test(l), 'runtime API update logged');
    }
    // The status socket shows the certificates served (names, expiry; never the key) and the runtime updates.
    const snap = await requestStatus<{ services: Record<string, { tls?: { certificates: Array<{ file: string; serial: string; notAfter: string }>; runtimeUpdates: number } }> }>(runs.statusSocket(instance));
    const tls = snap.services.web!.tls!;
    expect(tls.certificates.find((c) => c.file.endsWith('localhost.pem'))?.serial).toBe(next.serial);
    expect(tls.runtimeUpdates).toBeGreaterThanOrEqual(proxy === 'haproxy' ? 1 : 0);
    expect(JSON.stringify(snap)).not.toMatch(/PRIVATE KEY|MII/);
  }, 30_000);

  it.each([
    ['not PEM', async () => 'hello\n', /refused: not PEM/],
    ['a key that does not fit the certificate', async () => certs.api.cert + certs.shop.key, /refused: the private key does not match the certificate/],
    ['an expired certificate', async () => (await ca.issue(['localhost'], 0)).pem, /refused: expired on/],
  ])('a bad new file (%s) is refused with one line, and the last good certificate keeps serving', async (_what, make, line) => {
    const good = await servedCert(https, 'localhost');
    const from = err.lines.length;
    const before = await reloads();
    await new Promise((r) => setTimeout(r, 1100)); // an expired one: notAfter is now; let it pass
    await replaceFile(join(certDir, 'localhost.pem'), await make());
    const said = await err.next((l) => /localhost\.pem refused/.test(l), 'refusal logged', 10_000, from);
    expect(said).toMatch(line);
    expect(said).toMatch(/the last good certificate keeps serving/);
    expect(said).not.toMatch(/PRIVATE KEY-----|MII/); // no key or certificate text in the log
    expect((await servedCert(https, 'localhost')).serial).toBe(good.serial);
    expect((await curlTls('localhost', https, '/', ca.caPem)).status).toBe(200);
    expect(await reloads()).toBe(before);
  }, 20_000);

  it('cert dir names are untrusted: a symlink and a name that is not a host are refused, never rendered', async () => {
    const from = err.lines.length;
    await symlink(join(dir, `${proxy}-shop.pem`), join(certDir, 'evil.example.com.pem'));
    await writeFile(join(certDir, 'a;b{{x}}.pem'), certs.api.pem);
    await err.next((l) => /evil\.example\.com\.pem refused: is a symlink/.test(l), 'symlink refused', 10_000, from);
    await err.next((l) => /a;b\{\{x\}\}\.pem in the cert dir refused: not a host name/.test(l), 'bad name refused', 10_000, from);
    const config = await readFile(join(runs.stateDir(instance), proxy === 'haproxy' ? 'haproxy.cfg' : 'nginx.conf'), 'utf8');
    const list = proxy === 'haproxy' ? await readFile(join(runs.runDir(instance), 'certs', 'crt-list'), 'utf8') : '';
    expect(config + list).not.toMatch(/evil|a;b/);
  }, 20_000);
});
