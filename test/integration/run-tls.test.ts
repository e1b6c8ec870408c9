import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { renderStop } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { NamedBackends, getWithHost } from '../support/route-backends.js';
import { TestCa, curlTls, replaceFile, servedCert } from '../support/tls-certs.js';

// Issue 16, TLS in `elastic run`: a service's haproxy:/nginx: tls: and proxies.<kind>.tls (the
// TLS bind and cert dir); a changed certificate file is picked up by the daemon (HAProxy: runtime
// API, no reload). Ports (TLS area): HAProxy 25830 (http) / 25831 (https), nginx 25832 / 25833,
// backends 25834-25835.
const backends = new NamedBackends();
let dir: string;
let env: NodeJS.ProcessEnv;
let daemon: ReturnType<typeof elastic> | null = null;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'el-run-tls-'));
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await backends.start({ api: 25834, web: 25835 });
});

afterAll(async () => {
  if (daemon) {
    daemon.kill('SIGTERM');
    await daemon;
  }
  await renderStop({ instance: 'run-tl', proxy: 'haproxy', env, timeoutMs: 5000 }).catch(() => {});
  await renderStop({ instance: 'run-tl-nginx', proxy: 'nginx', env, timeoutMs: 5000 }).catch(() => {});
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('elastic run: services over https from a cert dir', () => {
  it('serves each host with its certificate on both proxies, redirects, and rotates a changed file (HAProxy: no reload)', async () => {
    const ca = new TestCa(dir);
    await ca.init();
    const certDir = join(dir, 'certs');
    await mkdir(certDir);
    await writeFile(join(certDir, 'api.example.com.pem'), (await ca.issue(['api.example.com'])).pem);
    await writeFile(join(certDir, 'default.pem'), (await ca.issue(['default.test'])).pem);
    const src = (port: number) => `{ static: { backends: ["127.0.0.1:${port}"] } }`;
    const file = join(dir, 'elastic.yaml');
    await writeFile(file, `version: 1
name: tl
sources:
  api: ${src(25834)}
  web: ${src(25835)}
default_service: web
proxies:
  haproxy: { tls: { port: 25831, cert_dir: ${certDir} } }
  nginx: { tls: { port: 25833, cert_dir: ${certDir} } }
services:
  - { name: api, sources: [api], haproxy: { port: 25830, hosts: [api.example.com], tls: { redirect: true } }, nginx: { port: 25832, hosts: [api.example.com], tls: { redirect: true } } }
  - { name: web, sources: [web], haproxy: { port: 25830, tls: {} }, nginx: { port: 25832, tls: {} } }
sync: { min_interval_ms: 50 }
`);
    daemon = elastic(['run', '-c', file], { env, timeout: 120_000 });
    for (const https of [25831, 25833]) {
      await waitFor(async () => (await curlTls('api.example.com', https, '/x', ca.caPem)).body === 'api /x', `api over https on ${https}`, 30_000, 200);
      expect((await curlTls('api.example.com', https, '/x', ca.caPem)).subject).toBe('CN=api.example.com');
      const web = await curlTls('default.test', https, '/', ca.caPem);
      expect(`${web.status} ${web.body} ${web.subject}`).toBe('200 web / CN=default.test');
    }
    for (const [http, https] of [[25830, 25831], [25832, 25833]]) {
      const red = await getWithHost(http!, 'api.example.com', '/a');
      expect(`${red.status} ${String(red.headers.location)}`).toBe(`301 https://api.example.com:${https}/a`);
    }

    const master = new HaproxyProcess({ config: '', masterSocket: join(dir, 'run', 'render-run-tl', 'haproxy-master.sock'), pidFile: '' });
    const before = (await master.showProc())?.reloads;
    const next = await ca.issue(['api.example.com']);
    await replaceFile(join(certDir, 'api.example.com.pem'), next.pem);
    for (const https of [25831, 25833]) await waitFor(async () => (await servedCert(https, 'api.example.com')).serial === next.serial, `new certificate on ${https}`, 10_000, 50);
    expect((await master.showProc())?.reloads, 'HAProxy reload counter').toBe(before);
  }, 90_000);
});
