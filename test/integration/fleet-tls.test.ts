import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { EtcdCluster } from '../support/etcd.js';
import { answer, FleetHost, startBackend, teardownFleet } from '../support/fleet.js';

/**
 * The fleet store over TLS with client certificates and etcd user/password auth (a real etcd
 * with --client-cert-auth and auth enabled; certificates made here with openssl). The password
 * comes from a file or the environment, never argv; a wrong one is one line, exit 4.
 */
const dir = mkdtempSync(join(tmpdir(), 'fleet-tls-'));
const pem = (n: string) => join(dir, n);
const etcd = new EtcdCluster(23580, 1, { ca: pem('ca.pem'), cert: pem('server.pem'), key: pem('server-key.pem'), client: { cert: pem('client.pem'), key: pem('client-key.pem') } });
const FLEET = 'fleet-tls';
const PASSWORD = 'fleet-tls-password-0123';
const host = new FleetHost('lb-1', 'fleettls');
let backend: Server;
const file = join(dir, 'elastic.yaml');
const tlsFlags = () => ['--etcd', etcd.endpoints, '--fleet', FLEET, '--etcd-ca', pem('ca.pem'), '--etcd-cert', pem('client.pem'), '--etcd-key', pem('client-key.pem'), '--etcd-user', 'lb'];
const config = `version: 1
name: fleettls
sources:
  web:
    static: { backends: ["127.0.0.1:23590"] }
services:
  - name: web
    sources: [web]
    haproxy: { port: 23591, mode: http }
sync: { min_interval_ms: 50 }
`;

async function openssl(args: string[]): Promise<void> {
  const r = await execa('openssl', args, { cwd: dir, reject: false });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}
async function cert(name: string, cn: string, ext: string): Promise<void> {
  writeFileSync(pem(`${name}.ext`), ext);
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`]);
}

beforeAll(async () => {
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=fleet-test-ca']);
  await cert('server', 'etcd', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  await cert('client', 'root', 'extendedKeyUsage=clientAuth\n');
  await etcd.start();
  // Auth: root, and a user `lb` that may only touch /elastic/.
  for (const args of [
    ['user', 'add', `root:${PASSWORD}-root`],
    ['role', 'add', 'fleet'],
    ['role', 'grant-permission', 'fleet', '--prefix=true', 'readwrite', '/elastic/'],
    ['user', 'add', `lb:${PASSWORD}`],
    ['user', 'grant-role', 'lb', 'fleet'],
    ['auth', 'enable'],
  ]) {
    const r = await etcd.ctl(args);
    expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  }
  writeFileSync(pem('password'), `${PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(file, config);
  backend = await startBackend(23590, 'T');
}, 60_000);

afterAll(() => teardownFleet([host], [backend], etcd, [dir]));

describe('fleet store over TLS with user/password', () => {
  it('push and status with the password from a file; a host with it from the environment serves', async () => {
    const p = await elastic(['cluster', 'push', '-c', file, ...tlsFlags(), '--etcd-password-file', pem('password')]);
    expect(p.exitCode, `${p.stdout}${p.stderr}`).toBe(0);
    expect(p.stdout).toContain('version 1 committed');
    host.start(etcd.endpoints, FLEET, tlsFlags().slice(4), { ELASTIC_ETCD_PASSWORD: PASSWORD });
    await waitFor(async () => (await answer(23591)) === 'T', 'the TLS fleet host serving', 20_000, 200).catch((err) => Promise.reject(new Error(`${err.message}\n${host.err?.lines.join('\n')}`)));
    const s = await elastic(['cluster', 'status', ...tlsFlags(), '--json'], { env: { ELASTIC_ETCD_PASSWORD: PASSWORD } });
    expect(s.exitCode, String(s.stderr)).toBe(0);
    await waitFor(async () => {
      const st = JSON.parse(String((await elastic(['cluster', 'status', ...tlsFlags(), '--json'], { env: { ELASTIC_ETCD_PASSWORD: PASSWORD } })).stdout));
      return st.version === 1 && st.hosts[0]?.alive && st.hosts[0]?.converged;
    }, 'the host converged', 15_000, 250);
    // The password is in no process's argv.
    expect(readFileSync(`/proc/${host.child!.pid}/cmdline`, 'utf8')).not.toContain(PASSWORD);
  }, 60_000);

  it('a wrong password is one line, exit 4; no client certificate is refused', async () => {
    const bad = await elastic(['cluster', 'status', ...tlsFlags()], { env: { ELASTIC_ETCD_PASSWORD: 'wrong-password-000' } });
    expect(bad.exitCode, String(bad.stderr)).toBe(4);
    expect(String(bad.stderr).trim().split('\n')).toHaveLength(1);
    expect(String(bad.stderr)).toContain('etcd refused the credentials');
    const noCert = await elastic(['cluster', 'status', '--etcd', etcd.endpoints, '--fleet', FLEET, '--etcd-ca', pem('ca.pem'), '--etcd-user', 'lb'], { env: { ELASTIC_ETCD_PASSWORD: PASSWORD, ELASTIC_ETCD_DIAL_TIMEOUT_MS: '2000' } });
    expect(noCert.exitCode).toBe(3);
    expect(String(noCert.stderr).trim().split('\n')).toHaveLength(1);
  }, 60_000);
});
