import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStop } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { NamedBackends, getWithHost } from '../support/route-backends.js';

// Issue 16: a custom 503 page file (error_page_503 / --error-page-503), served with Retry-After by
// an empty service on real HAProxy 2.6 and nginx 1.22, byte for byte; and the files refused.
// Ports (this area's range 25900-25999): backend 25910; binds haproxy 25900/25902, nginx 25901/25903.
const backends = new NamedBackends();
let dir: string;
const started: Array<{ instance: string; proxy: 'haproxy' | 'nginx' }> = [];
const envOf = (instance: string) => ({ ELASTIC_STATE_DIR: join(dir, instance, 'state'), ELASTIC_RUN_DIR: join(dir, instance, 'run') });

// Everything a config string could trip on: $VAR and ${VAR} (HAProxy env expansion, nginx
// variables), # (HAProxy comments), quotes, a backslash, a tab, CRLF, UTF-8.
const PAGE_SITE = '<!doctype html>\n<title>Back soon</title>\n<p>Site "gone" is $HOME ${PATH} # not a comment; it\'s \\n a backslash\tand a tab.\r\n<p>Bientôt — 5 s</p>\n';
const PAGE_ALL = '<!doctype html><title>Maintenance</title><p>Every site: back in a minute.</p>\n';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'el-503-'));
  await backends.start({ api: 25910 });
  await writeFile(join(dir, 'site.html'), PAGE_SITE);
  await writeFile(join(dir, 'all.html'), PAGE_ALL);
  await writeFile(join(dir, 'none.yaml'), 'backends: []\n');
});

afterAll(async () => {
  for (const s of started) await renderStop({ instance: s.instance, proxy: s.proxy, env: envOf(s.instance), timeoutMs: 5000 }).catch(() => {});
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
});

describe.each([
  { proxy: 'haproxy' as const, routed: 25900, plain: 25902 },
  { proxy: 'nginx' as const, routed: 25901, plain: 25903 },
])('custom 503 page: $proxy', ({ proxy, routed, plain }) => {
  it('per service and global: an empty service answers the file, byte for byte, with Retry-After; a served one is untouched', async () => {
    const instance = `ep-${proxy[0]}`;
    const file = join(dir, `${instance}.yaml`);
    await writeFile(file, [
      `error_page_503: ${join(dir, 'all.html')}`,
      'services:',
      `  - name: api\n    bind: 127.0.0.1:${routed}\n    hosts: [api.example.com]\n    select: { backend: ["127.0.0.1:25910"] }`,
      `  - name: gone\n    bind: 127.0.0.1:${routed}\n    hosts: [gone.example.com]\n    error_page_503: ${join(dir, 'site.html')}\n    select: { file: ${join(dir, 'none.yaml')} }`,
      `  - name: alone\n    bind: 127.0.0.1:${plain}\n    select: { file: ${join(dir, 'none.yaml')} }`,
    ].join('\n'));
    started.push({ instance, proxy });
    const r = await elastic(['render', '--proxy', proxy, '--config', file, '--instance-name', instance, '--start', '--min-backends', '0'], { env: envOf(instance) });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect((await getWithHost(routed, 'api.example.com', '/')).body).toBe('api /');
    for (const [port, host, page] of [[routed, 'gone.example.com', PAGE_SITE], [plain, 'any.example.com', PAGE_ALL]] as const) {
      const a = await getWithHost(port, host, '/x');
      expect(a.status, host).toBe(503);
      expect(a.headers['retry-after'], host).toBe('5');
      expect(a.headers['content-type'], host).toMatch(/text\/html/);
      expect(a.body, host).toBe(page.trim());
      expect(Number(a.headers['content-length']), host).toBe(Buffer.byteLength(page));
    }
  });
});

describe('a 503 page file that cannot be trusted or served is refused (exit 5, one line, nothing rendered)', () => {
  const check = async (args: string[], message: RegExp) => {
    const r = await elastic(['render', '--service', 'web', '--bind', '127.0.0.1:25990', '--backend', '127.0.0.1:25910', '--check', ...args], { env: envOf('bad') });
    expect(r.stderr).toMatch(message);
    expect(String(r.stderr).trim().split('\n').filter((l) => l.startsWith('Error') || l.includes('error page')).length).toBeLessThanOrEqual(2);
    return r.exitCode;
  };

  it.each([
    ['a symlink', async (f: string) => symlink(join(dir, 'all.html'), f), /is a symlink/],
    ['writable by others', async (f: string) => writeFile(f, PAGE_ALL).then(() => chmod(f, 0o666)), /writable by group or others \(mode 666\)/],
    ['over 3 KiB', async (f: string) => writeFile(f, 'a'.repeat(3073)), /is 3073 bytes; at most 3072/],
    ['a control character', async (f: string) => writeFile(f, 'ok\u001b[2Jpage'), /control character \(U\+001b\)/],
    ['not UTF-8', async (f: string) => writeFile(f, Buffer.from([0x3c, 0xff, 0xfe, 0x3e])), /is not UTF-8 text/],
    ['empty', async (f: string) => writeFile(f, '\n'), /is empty/],
    ['missing', async () => {}, /cannot read it \(ENOENT\)/],
    ['too long once quoted for nginx', async (f: string) => writeFile(f, '$'.repeat(300)), /does not fit one nginx config string/],
  ])('%s', async (what, make, message) => {
    const f = join(dir, `bad-${what.replace(/\W+/g, '-')}.html`);
    await make(f);
    expect(await check(['--error-page-503', f], message)).toBe(5);
  });

  it('--routes-from-labels reads and checks the page as well (exit 5)', async () => {
    const f = join(dir, 'loose-labels.html');
    await writeFile(f, PAGE_ALL);
    await chmod(f, 0o664);
    const r = await elastic(['render', '--routes-from-labels', '--bind', '127.0.0.1:25991', '--label', 'elastic.test=none', '--error-page-503', f, '--check'], { env: envOf('bad') });
    expect(r.exitCode, String(r.stderr)).toBe(5);
    expect(String(r.stderr)).toMatch(/writable by group or others \(mode 664\)/);
  });

  it('a tcp service, and Varnish, are refused with the flag to drop (exit 2)', async () => {
    expect(await check(['--mode', 'tcp', '--error-page-503', join(dir, 'all.html')], /a 503 page is for http services/)).toBe(2);
    expect(await check(['--proxy', 'varnish', '--error-page-503', join(dir, 'all.html')], /Varnish template has its own/)).toBe(2);
  });
});
