import { execa } from 'execa';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';

// X-Forwarded-Proto through Varnish, as HAProxy and nginx send it (render-forwarded.test.ts):
// the scheme the client used, a client's own value replaced; varnishd terminates no TLS, so
// https only from a TLS proxy in front that says so in PROXY v2 (its SSL field). varnishd itself
// appends the client to X-Forwarded-For. Real varnishd. Ports: 27680 (http), 27683 (PROXY),
// 27681 (admin), echo backend 27682.
const HTTP = 27680;
const PROXY = 27683;
const ECHO = 27682;
let dir: string;
let echo: Server;
let varnishPid = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'el-vxf-'));
  await chmod(dir, 0o755); // varnishd compiles the VCL as its own user
  echo = createServer((req, res) => res.end(`proto=${String(req.headers['x-forwarded-proto'] ?? '-')} for=${String(req.headers['x-forwarded-for'] ?? '-')}`));
  await new Promise<void>((resolve, reject) => echo.once('error', reject).listen(ECHO, '127.0.0.1', () => resolve()));
  await writeFile(join(dir, 'init.vcl'), 'vcl 4.1;\nbackend default none;\n');
  await execa('varnishd', ['-a', `127.0.0.1:${HTTP}`, '-a', `127.0.0.1:${PROXY},PROXY`, '-T', '127.0.0.1:27681', '-f', join(dir, 'init.vcl'), '-n', join(dir, 'varnish'), '-P', join(dir, 'varnishd.pid'), '-s', 'malloc,16m'], { stdin: 'ignore' });
  varnishPid = Number(await readFile(join(dir, 'varnishd.pid'), 'utf8'));
}, 60_000);

afterAll(async () => {
  if (varnishPid > 1 && pidAlive(varnishPid)) process.kill(varnishPid, 'SIGTERM');
  await waitFor(() => !(varnishPid > 1 && pidAlive(varnishPid)), 'varnishd stopped', 10_000).catch(() => {});
  echo?.closeAllConnections();
  echo?.close();
  await rm(dir, { recursive: true, force: true });
});

/** One GET to 127.0.0.1:port over a raw socket, optionally after a PROXY v2 header; the body. */
function rawGet(port: number, headers: string, proxyV2?: { ssl: boolean }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('data', (c) => (data += c.toString()));
    s.on('end', () => resolve(data.split('\r\n\r\n').slice(1).join('\r\n\r\n')));
    s.on('error', reject);
    s.on('connect', () => {
      if (proxyV2) {
        // TCP4 127.0.0.1:40000 -> 127.0.0.1:HTTP (the VCL routes by server port), and a PP2_TYPE_SSL
        // TLV: client flags (PP2_CLIENT_SSL or none), verify 0.
        const tlv = Buffer.from([0x20, 0x00, 0x05, proxyV2.ssl ? 0x01 : 0x00, 0, 0, 0, 0]);
        const addr = Buffer.from([127, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40, (HTTP >> 8) & 0xff, HTTP & 0xff]);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(addr.length + tlv.length);
        s.write(Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x11]), len, addr, tlv]));
      }
      s.write(`GET / HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n${headers}\r\n`);
    });
  });
}

it('Varnish sends X-Forwarded-Proto: http for plain clients (their own value replaced), https only when PROXY v2 says TLS', async () => {
  const r = await elastic(['render', '--proxy', 'varnish', '--varnish-name', join(dir, 'varnish'), '--service', 'xf', '--bind', `127.0.0.1:${HTTP}`, '--backend', `127.0.0.1:${ECHO}`, '--lb-check', 'none', '--json'], { env: { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') }, timeout: 60_000 });
  expect(r.exitCode, String(r.stderr)).toBe(0);
  await waitFor(async () => /^proto=/.test(await rawGet(HTTP, '').catch(() => '')), 'varnish serves the echo backend', 15_000, 100);
  expect(await rawGet(HTTP, '')).toMatch(/^proto=http for=127\.0\.0\.1$/);
  expect(await rawGet(HTTP, 'X-Forwarded-Proto: https\r\nX-Forwarded-For: 203.0.113.9\r\n')).toMatch(/^proto=http for=203\.0\.113\.9, 127\.0\.0\.1$/);
  expect(await rawGet(PROXY, 'X-Forwarded-Proto: http\r\n', { ssl: true })).toMatch(/^proto=https for=127\.0\.0\.1$/);
  expect(await rawGet(PROXY, 'X-Forwarded-Proto: https\r\n', { ssl: false })).toMatch(/^proto=http /);
});
