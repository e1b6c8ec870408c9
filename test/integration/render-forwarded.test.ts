import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineReader } from '../support/lines.js';
import { RenderRuns } from '../support/render-runs.js';
import { getWithHost } from '../support/route-backends.js';
import { TestCa, curlTls } from '../support/tls-certs.js';

// X-Forwarded-For / X-Forwarded-Proto, the same on HAProxy and nginx (docs/render.md "TLS"):
// the backend sees the scheme the client used (a client's own X-Forwarded-Proto is replaced:
// it could claim https over http) and the client address appended to any X-Forwarded-For it
// sent. On a routed bind with a TLS bind, and on a plain service of its own.
// Ports (this area's range 26600-26799): echo backend 26600; haproxy 26610 (http) / 26611
// (https) / 26612 (plain service); nginx 26620 / 26621 / 26622.
const ECHO = 26600;
const PROXIES = [
  { proxy: 'haproxy', http: 26610, https: 26611, plain: 26612 },
  { proxy: 'nginx', http: 26620, https: 26621, plain: 26622 },
] as const;

let echo: Server;
let dir: string;
let ca: TestCa;
const runs = new RenderRuns();

beforeAll(async () => {
  dir = await runs.init('el-xf-');
  ca = new TestCa(dir);
  await ca.init();
  // Answers what it was told: "proto=<X-Forwarded-Proto> for=<X-Forwarded-For>" (node joins repeated XFF lines with ", ").
  echo = createServer((req, res) => res.end(`proto=${String(req.headers['x-forwarded-proto'] ?? '-')} for=${String(req.headers['x-forwarded-for'] ?? '-')}`));
  await new Promise<void>((resolve, reject) => echo.once('error', reject).listen(ECHO, '127.0.0.1', () => resolve()));
}, 60_000);

afterAll(async () => {
  await runs.cleanup();
  await new Promise((r) => echo?.close(r));
});

describe.each(PROXIES)('X-Forwarded-For and X-Forwarded-Proto: $proxy', ({ proxy, http, https, plain }) => {
  const instance = `xf-${proxy[0]}`;

  beforeAll(async () => {
    await writeFile(join(dir, `${proxy}-default.pem`), (await ca.issue(['xf.example.com'])).pem);
    const file = join(dir, `${instance}.yaml`);
    const backend = `    select: { backend: ["127.0.0.1:${ECHO}"] }`;
    await writeFile(file, [
      `tls_bind: 127.0.0.1:${https}`,
      `default_cert: ${join(dir, `${proxy}-default.pem`)}`,
      'services:',
      `  - name: site\n    bind: 127.0.0.1:${http}\n    hosts: [xf.example.com]\n    tls: true\n${backend}`,
      `  - name: plain\n    bind: 127.0.0.1:${plain}\n${backend}`,
    ].join('\n'));
    const child = runs.start(instance, proxy, ['--proxy', proxy, '--config', file, '--start', '--watch', '--wait', '50ms:1s']);
    await new LineReader(child.stdout!).next((l) => /started/.test(l), `${proxy} started`, 20_000);
  }, 60_000);

  it('the backend sees the scheme the client used and the client address, whatever the client claimed', async () => {
    const spoof = ['-H', 'X-Forwarded-Proto: https', '-H', 'X-Forwarded-For: 198.18.73.9'];
    expect((await curlTls('xf.example.com', https, '/', ca.caPem)).body, 'https').toBe('proto=https for=127.0.0.1');
    expect((await curlTls('xf.example.com', https, '/', ca.caPem, ['-H', 'X-Forwarded-Proto: http'])).body, 'https, client claims http').toBe('proto=https for=127.0.0.1');
    expect((await getWithHost(http, 'xf.example.com', '/')).body, 'http on the routed bind').toBe('proto=http for=127.0.0.1');
    expect((await getWithHost(plain, 'any.example.com', '/')).body, 'http on a service of its own').toBe('proto=http for=127.0.0.1');
    for (const [port, what] of [[http, 'routed bind'], [plain, 'own bind']] as const) {
      const { execa } = await import('execa');
      const r = await execa('curl', ['-sS', '--max-time', '5', '-H', 'Host: xf.example.com', ...spoof, `http://127.0.0.1:${port}/`]);
      expect(r.stdout, `http on the ${what}, client claims https and an address`).toBe('proto=http for=198.18.73.9, 127.0.0.1');
    }
  });
});
