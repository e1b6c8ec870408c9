import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { sendCommand } from '../../src/engine/frontends/haproxy/runtime.js';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { RenderRuns } from '../support/render-runs.js';
import { NamedBackends } from '../support/route-backends.js';
import { TestCa, replaceFile, servedCert } from '../support/tls-certs.js';

// Issue 16, TLS: when HAProxy refuses `set ssl cert` (here: another certificate's transaction is
// open on the runtime API, which HAProxy allows one of at a time), a changed certificate file is
// put in force by the fallback, a seamless reload: the new certificate is served, the reload
// counter moves, status counts it. Real HAProxy 2.6. Ports: 27660 (http), 27661 (https),
// backends 27670-27671.
const INSTANCE = 'tlsfb';
const B = { local: 27670, api: 27671 };
const backends = new NamedBackends();
const runs = new RenderRuns();
let dir: string;

beforeAll(async () => {
  dir = await runs.init('el-tfb-');
  await backends.start(B);
});

afterAll(async () => {
  await runs.cleanup();
  await backends.stop();
});

it('a certificate HAProxy will not take through the runtime API is put in force by a seamless reload', async () => {
  const ca = new TestCa(dir);
  await ca.init();
  const certDir = join(dir, 'certs');
  await mkdir(certDir);
  const api = await ca.issue(['api.example.com']);
  await writeFile(join(certDir, 'localhost.pem'), (await ca.issue(['localhost'])).pem);
  await writeFile(join(certDir, 'api.example.com.pem'), api.pem);
  const site = (name: keyof typeof B, host: string) => `  - name: ${name}\n    bind: 127.0.0.1:27660\n    hosts: ["${host}"]\n    tls: true\n    lb_check: none\n    select: { backend: ["127.0.0.1:${B[name]}"] }\n`;
  await writeFile(join(dir, 'sites.yaml'), `tls_bind: 127.0.0.1:27661\ncert_dir: ${certDir}\nservices:\n${site('local', 'localhost')}${site('api', 'api.example.com')}`);
  const child = runs.start(INSTANCE, 'haproxy', ['--config', join(dir, 'sites.yaml'), '--start', '--watch', '--wait', '50ms:200ms', '--json'], 120_000);
  const out = new LineReader(child.stdout!);
  const err = new LineReader(child.stderr!);
  await out.json<{ action: string }>((r) => r.action === 'start', 'haproxy started', 30_000);

  const run = runs.runDir(INSTANCE);
  const master = new HaproxyProcess({ config: '', masterSocket: join(run, 'haproxy-master.sock'), pidFile: '' });
  const before = (await master.showProc())?.reloads;
  // Hold HAProxy's one certificate transaction on the api certificate (never committed).
  const crtList = await readFile(join(run, 'certs', 'crt-list'), 'utf8');
  const apiCopy = crtList.split('\n').map((l) => l.split(' ')[0]!).find((f) => f.endsWith('api.example.com.pem'));
  expect(apiCopy, crtList).toBeTruthy();
  expect(await sendCommand(join(run, 'haproxy.sock'), `set ssl cert ${apiCopy}`, 5000, api.pem)).toMatch(/Transaction created/);

  const next = await ca.issue(['localhost']);
  await replaceFile(join(certDir, 'localhost.pem'), next.pem);
  await err.next((l) => /runtime API failed; seamless reload instead/.test(l), 'the fallback warning', 20_000);
  await waitFor(async () => (await servedCert(27661, 'localhost')).serial.toUpperCase() === next.serial.toUpperCase(), 'the new certificate served', 20_000, 100);
  expect((await master.showProc())?.reloads).toBeGreaterThan(before ?? 0);
  const snap = await requestStatus<{ services: Record<string, { tls?: { fallbackReloads: number; runtimeUpdates: number } }> }>(runs.statusSocket(INSTANCE));
  expect(snap.services.local?.tls?.fallbackReloads).toBeGreaterThanOrEqual(1);
  expect(snap.services.local?.tls?.runtimeUpdates).toBe(0);
});
