import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStop } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { NamedBackends, getWithHost } from '../support/route-backends.js';
import { LineReader } from '../support/lines.js';
import { waitFor } from '../support/docker.js';

// Issue 16 item 1 (routes on a shared bind) and item 2 (an empty service answers 503), through
// the built binary against real HAProxy 2.6 and nginx 1.22. Ports (this area's range):
// backends 25110-25116; binds: haproxy 25100/25102/25104/25106/25107/25120, nginx 25101/25103/25105/25108/25109.
const backends = new NamedBackends();
const BACKENDS = { api: 25110, apiv2: 25111, wild: 25112, shop: 25113, assets: 25114, web: 25115, solo: 25116 };
let dir: string;
let watch: ReturnType<typeof elastic> | null = null;
const started: Array<{ instance: string; proxy: 'haproxy' | 'nginx' }> = [];
const envOf = (instance: string) => ({ ELASTIC_STATE_DIR: join(dir, instance, 'state'), ELASTIC_RUN_DIR: join(dir, instance, 'run') });
const PROXIES = [
  { proxy: 'haproxy', ports: { shared: 25100, noDefault: 25102, flags: 25104, emptyRouted: 25106, emptyPlain: 25107 } },
  { proxy: 'nginx', ports: { shared: 25101, noDefault: 25103, flags: 25105, emptyRouted: 25108, emptyPlain: 25109 } },
] as const;

const service = (name: string, port: number, extra: string) => `  - name: ${name}\n    bind: 127.0.0.1:${port}\n    select: { backend: ["127.0.0.1:${BACKENDS[name as keyof typeof BACKENDS]}"] }\n${extra}`;

/** Render a config once with --start; the proxy keeps running until afterAll stops it. */
async function renderConfig(proxy: string, instance: string, yaml: string, extra: string[] = []): Promise<void> {
  const file = join(dir, `${instance}.yaml`);
  await writeFile(file, yaml);
  started.push({ instance, proxy: proxy as 'haproxy' | 'nginx' });
  const r = await elastic(['render', '--proxy', proxy, '--config', file, '--instance-name', instance, '--start', ...extra], { env: envOf(instance) });
  expect(r.exitCode, String(r.stderr)).toBe(0);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'el-routes-')) // short: HAProxy's master socket path (+ .pid.tmp) must fit 108 bytes;
  await backends.start(BACKENDS);
});

afterAll(async () => {
  if (watch) {
    watch.kill('SIGTERM');
    await watch;
  }
  for (const s of started) await renderStop({ instance: s.instance, proxy: s.proxy, env: envOf(s.instance), timeoutMs: 5000 }).catch(() => {});
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
});

// The precedence table of docs/render.md "Routing": [Host header, path, backend, path it sees, why].
const TABLE: Array<[string, string, string, string, string]> = [
  ['api.example.com', '/', 'api', '/', 'exact host'],
  ['API.Example.COM:80', '/users?x=1', 'api', '/users?x=1', 'case and port ignored, query kept'],
  ['api.example.com.', '/', 'api', '/', 'trailing dot ignored'],
  ['api.example.com', '/v2/users', 'apiv2', '/users', 'longest prefix, stripped'],
  ['api.example.com', '/v2', 'apiv2', '/', 'the prefix itself, stripped to /'],
  ['api.example.com', '/v2x', 'api', '/v2x', 'prefixes match on segment boundaries'],
  ['www.example.com', '/static/a.css', 'wild', '/static/a.css', 'a wildcard host beats a path-only route (host first)'],
  ['a.b.example.com', '/', 'wild', '/', 'a wildcard matches deeper names'],
  ['shop.example.com', '/cart/1', 'shop', '/cart/1', 'exact host with a path'],
  ['shop.example.com', '/other', 'web', '/other', 'host matched, no path: the default, not the wildcard'],
  ['example.com', '/', 'web', '/', 'a wildcard does not match its bare domain'],
  ['other.org', '/static/a.css', 'assets', '/static/a.css', 'any host: a path-only route'],
  ['other.org', '/', 'web', '/', 'nothing matched: the default service'],
];

describe.each(PROXIES)('routes on one shared bind: $proxy', ({ proxy, ports }) => {
  it('three sites, a path split and a path-only route on one bind, plus a default: every case of the table', async () => {
    const p = ports.shared;
    await renderConfig(proxy, `rt-${proxy[0]}`, [
      'default_service: web',
      'services:',
      service('api', p, '    hosts: [api.example.com]\n'),
      service('apiv2', p, '    hosts: [api.example.com]\n    paths: [/v2]\n    strip_prefix: true\n'),
      service('wild', p, '    hosts: ["*.example.com"]\n'),
      service('shop', p, '    hosts: [shop.example.com]\n    paths: [/cart]\n'),
      service('assets', p, '    paths: [/static]\n'),
      service('web', p, ''),
    ].join('\n'));
    for (const [host, path, want, seen, why] of TABLE) {
      const a = await getWithHost(p, host, path);
      expect(`${a.status} ${a.body}`, `${host}${path}: ${why}`).toBe(`200 ${want} ${seen}`);
    }
  });

  it('without a default_service, what no route matches gets a 404 page', async () => {
    const p = ports.noDefault;
    await renderConfig(proxy, `nd-${proxy[0]}`, ['services:', service('api', p, '    hosts: [api.example.com]\n'), service('assets', p, '    paths: [/static]\n'), service('shop', p, '    hosts: [shop.example.com]\n    paths: [/cart]\n')].join('\n'));
    expect((await getWithHost(p, 'api.example.com', '/x')).body).toBe('api /x');
    expect((await getWithHost(p, 'other.org', '/static/x')).body).toBe('assets /static/x');
    for (const [host, path] of [['other.org', '/'], ['shop.example.com', '/'], ['', '/']] as const) {
      const a = await getWithHost(p, host, path);
      expect(a.status, `${host}${path}`).toBe(404);
      expect(a.headers['content-type']).toMatch(/text\/html/);
      expect(a.body).toMatch(/404 Not Found.*No site is served at this host and path/);
    }
  });

  it('--host/--path/--strip-prefix route one service from flags', async () => {
    const p = ports.flags;
    const instance = `fl-${proxy[0]}`;
    started.push({ instance, proxy });
    const r = await elastic(['render', '--proxy', proxy, '--service', 'solo', '--bind', `127.0.0.1:${p}`, '--backend', `127.0.0.1:${BACKENDS.solo}`, '--host', 'solo.example.com', '--host', '*.solo.example.com', '--path', '/p', '--strip-prefix', '--start', '--instance-name', instance], { env: envOf(instance) });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect((await getWithHost(p, 'solo.example.com', '/p/x')).body).toBe('solo /x');
    expect((await getWithHost(p, 'a.solo.example.com', '/p')).body).toBe('solo /');
    expect((await getWithHost(p, 'solo.example.com', '/q')).status).toBe(404);
    expect((await getWithHost(p, 'other.example.com', '/p/x')).status).toBe(404);
  });
});

describe('routes that cannot be served are refused before anything is rendered', () => {
  it.each([
    ['a host a config cannot carry', 'services:\n' + service('api', 25199, '    hosts: ["a.com;"]\n'), /services\[0\]: service api: host "a.com;": .*not a host name label/],
    ['a path a config cannot carry', 'services:\n' + service('api', 25199, '    paths: ["/a b"]\n'), /path "\/a b": a path may hold only/],
    ['two services claiming one host and path', 'services:\n' + service('api', 25199, '    hosts: [x.example.com]\n') + service('web', 25199, '    hosts: [x.example.com]\n'), /x\.example\.com\/ is claimed by two services: api and web/],
    ['a service on a shared bind with no route', 'services:\n' + service('api', 25199, '    hosts: [x.example.com]\n') + service('web', 25199, ''), /service web shares bind 127\.0\.0\.1:25199 but declares no hosts or paths/],
    ['an unknown default_service', 'default_service: nope\nservices:\n' + service('api', 25199, '    hosts: [x.example.com]\n'), /default_service "nope" is not a service/],
  ])('%s (exit 5, one line)', async (_what, yaml, message) => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, yaml);
    const r = await elastic(['render', '--config', file, '--check'], { env: envOf('bad') });
    expect(r.exitCode, String(r.stderr)).toBe(5);
    expect(r.stderr).toMatch(message);
  });
});

describe.each(PROXIES)('an empty service answers 503 with Retry-After: $proxy', ({ proxy, ports }) => {
  it('a routed service and a service of its own, both with no backends', async () => {
    const none = join(dir, 'none.yaml');
    await writeFile(none, 'backends: []\n');
    const empty = (name: string, port: number, extra: string) => `  - name: ${name}\n    bind: 127.0.0.1:${port}\n    select: { file: ${none} }\n${extra}`;
    await renderConfig(proxy, `em-${proxy[0]}`, ['services:', service('api', ports.emptyRouted, '    hosts: [api.example.com]\n'), empty('gone', ports.emptyRouted, '    hosts: [gone.example.com]\n'), empty('alone', ports.emptyPlain, '')].join('\n'), ['--min-backends', '0']);
    expect((await getWithHost(ports.emptyRouted, 'api.example.com', '/')).body).toBe('api /');
    for (const [port, host] of [[ports.emptyRouted, 'gone.example.com'], [ports.emptyPlain, 'any.example.com']] as const) {
      const a = await getWithHost(port, host, '/x');
      expect(a.status, host).toBe(503);
      expect(a.headers['retry-after']).toBe('5');
      expect(a.headers['content-type']).toMatch(/text\/html/);
      expect(a.body).toMatch(/503 Service Unavailable.*No backend is serving this site right now/);
    }
  });
});

describe('HAProxy: a service emptied at run time answers 503 at once, through the runtime API', () => {
  it('the last backend leaves: a runtime pass (no reload), then 503 with Retry-After', async () => {
    const list = join(dir, 'list.yaml');
    await writeFile(list, `backends: ["127.0.0.1:${BACKENDS.api}"]\n`);
    const file = join(dir, 'w.yaml');
    await writeFile(file, `services:\n  - name: api\n    bind: 127.0.0.1:25120\n    hosts: [api.example.com]\n    select: { file: ${list} }\n`);
    started.push({ instance: 'w-h', proxy: 'haproxy' });
    watch = elastic(['render', '--config', file, '--instance-name', 'w-h', '--start', '--watch', '--wait', '50ms:200ms', '--min-backends', '0', '--force', '--json'], { env: envOf('w-h'), timeout: 120_000 });
    const out = new LineReader(watch.stdout!);
    await out.json<{ action: string }>((r) => r.action === 'start', 'HAProxy started', 30_000);
    expect((await getWithHost(25120, 'api.example.com', '/')).body).toBe('api /');
    const from = out.lines.length;
    await writeFile(list, 'backends: []\n');
    const pass = await out.json<{ action: string }>((r) => r.action !== 'none' && r.action !== 'start', 'the pass that empties the service', 30_000, from);
    expect(pass.action).toBe('runtime');
    const a = await waitFor(async () => {
      const r = await getWithHost(25120, 'api.example.com', '/');
      return r.status === 503 ? r : null;
    }, '503 from the emptied service', 10_000, 100);
    expect(a!.headers['retry-after']).toBe('5');
  });
});
