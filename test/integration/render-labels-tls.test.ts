import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStop } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { TestContainers, docker, requireDocker, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { getWithHost } from '../support/route-backends.js';
import { TestCa, curlTls } from '../support/tls-certs.js';

// Issue 16, TLS with routes from container labels: `--routes-from-labels --tls-bind --cert-dir`,
// `elastic.http.tls=redirect`. Real containers on our own network 198.18.61.0/24, real HAProxy
// and nginx. Ports (TLS area): HAProxy 25840 (http) / 25841 (https), nginx 25842 / 25843.
const tc = new TestContainers();
const NET = `elastic-tls-${process.pid}`;
let network: Docker.Network | null = null;
let dir: string;
let ca: TestCa;
let certDir: string;
const watches: Array<ReturnType<typeof elastic>> = [];
const envOf = (instance: string) => ({ ELASTIC_STATE_DIR: join(dir, instance, 'state'), ELASTIC_RUN_DIR: join(dir, instance, 'run') });
const CMD = ['sh', '-c', 'hostname > /www/id && exec httpd -f -p 80 -h /www'];

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'el-ltls-'));
  ca = new TestCa(dir);
  await ca.init();
  certDir = join(dir, 'certs');
  await mkdir(certDir);
  await writeFile(join(certDir, 'lt.example.com.pem'), (await ca.issue(['lt.example.com'])).pem);
  await writeFile(join(certDir, 'default.pem'), (await ca.issue(['default.test'])).pem);
  network = await docker.createNetwork({ Name: NET, Driver: 'bridge', IPAM: { Config: [{ Subnet: '198.18.61.0/24' }] }, Labels: { 'elastic.test': tc.runId } });
}, 60_000);

afterAll(async () => {
  for (const w of watches) {
    w.kill('SIGTERM');
    await w.catch(() => {});
  }
  for (const proxy of ['haproxy', 'nginx'] as const) await renderStop({ instance: `lt-${proxy[0]}`, proxy, env: envOf(`lt-${proxy[0]}`), timeoutMs: 5000 }).catch(() => {});
  await tc.cleanup();
  if (network) await waitFor(async () => network!.remove().then(() => true, (e: { statusCode?: number }) => e.statusCode === 404), 'the test network removed', 15_000, 250).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

describe.each([
  { proxy: 'haproxy', http: 25840, https: 25841 },
  { proxy: 'nginx', http: 25842, https: 25843 },
] as const)('render --routes-from-labels --tls-bind: $proxy', ({ proxy, http, https }) => {
  it('a labelled container is served over https with its certificate; elastic.http.tls=redirect redirects only its route', async () => {
    const instance = `lt-${proxy[0]}`;
    const w = elastic(['render', '--proxy', proxy, '--routes-from-labels', '--bind', `127.0.0.1:${http}`, '--tls-bind', `127.0.0.1:${https}`, '--cert-dir', certDir, '--network', NET, '--label', `elastic.test=${tc.runId}`, '--instance-name', instance, '--start', '--watch', '--wait', '50ms:200ms', '--json'], { env: envOf(instance), timeout: 300_000 });
    watches.push(w);
    const out = new LineReader(w.stdout!);
    await out.json<{ action: string }>((r) => r.action === 'start', `${proxy} started`, 30_000);
    const lt = await tc.run({ network: NET, labels: { 'elastic.http.host': 'lt.example.com', 'elastic.http.tls': 'redirect' }, cmd: CMD });
    const lu = await tc.run({ network: NET, labels: { 'elastic.http.host': 'lu.example.com' }, cmd: CMD });
    const idOf = async (c: Docker.Container) => (await c.inspect()).Config.Hostname;
    await waitFor(async () => (await curlTls('lt.example.com', https, '/id', ca.caPem)).body === (await idOf(lt)), 'lt over https', 30_000, 100);
    expect((await curlTls('lt.example.com', https, '/id', ca.caPem)).subject).toBe('CN=lt.example.com');
    await waitFor(async () => (await getWithHost(http, 'lu.example.com', '/id')).body === (await idOf(lu)), 'lu over http', 30_000, 100);
    const red = await getWithHost(http, 'lt.example.com', '/id');
    expect(`${red.status} ${String(red.headers.location)}`).toBe(`301 https://lt.example.com:${https}/id`);
  }, 90_000);
});
