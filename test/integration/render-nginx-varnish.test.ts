import { execa } from 'execa';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { serviceSpec } from '../../src/engine/frontends/services.js';
import { buildRenderer, defaultPaths, type RenderOptions } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { LocalBackends, httpGet, startVarnishd } from '../support/render-backends.js';
import { waitFor } from '../support/docker.js';

// Real nginx 1.22 and Varnish 7.1 we start ourselves in temp dirs. Ports: nginx 18430,
// varnish 18440 (admin 18441), backends 18470-18471.
const backends = new LocalBackends();
let dir: string;
let env: NodeJS.ProcessEnv;
let varnishPid: number | null = null;
const b = (port: number) => staticBackend('127.0.0.1', port, 'web');
const options = (proxy: 'nginx' | 'varnish', port: number, extra: Partial<RenderOptions> = {}): RenderOptions => ({
  instance: `i${proxy}`,
  proxy,
  services: [{ spec: serviceSpec('web', { bind: `127.0.0.1:${port}`, 'lb-check': proxy === 'varnish' ? 'http:/id' : 'tcp' }), discover: {} }],
  start: proxy !== 'varnish', // render never starts varnishd
  guard: { minBackends: 1, maxChangePct: 50, force: false },
  env,
  ...extra,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-nv-'));
  await chmod(dir, 0o755); // varnishd reads VCL files as its unprivileged user
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await backends.start([18470, 18471]);
});

afterAll(async () => {
  const pidFile = defaultPaths('inginx', 'nginx', env).pidFile;
  const nginxPid = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
  if (nginxPid > 1 && pidAlive(nginxPid)) process.kill(nginxPid, 'SIGQUIT');
  if (varnishPid && pidAlive(varnishPid)) process.kill(varnishPid, 'SIGTERM');
  await waitFor(() => !(nginxPid > 1 && pidAlive(nginxPid)) && !(varnishPid && pidAlive(varnishPid)), 'nginx and varnishd stopped', 10_000).catch(() => {});
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('render with nginx', () => {
  it('starts nginx, reloads on change, and returns only when every new connection gets the new config', async () => {
    const first = await (await buildRenderer(options('nginx', 18430))).sync({ web: [b(18470)] });
    expect(first.action).toBe('start');
    expect(await httpGet(18430)).toBe('b18470');
    const second = await (await buildRenderer(options('nginx', 18430, { guard: { minBackends: 1, maxChangePct: 50, force: true } }))).sync({ web: [b(18471)] });
    expect(second.action).toBe('reload');
    // reload returns once no old worker accepts: every new connection from now on is served by the new config
    const seen = await Promise.all(Array.from({ length: 20 }, () => httpGet(18430)));
    expect(new Set(seen)).toEqual(new Set(['b18471']));
  });

  it('a config nginx rejects is an error with the line; the live file is untouched', async () => {
    const renderer = await buildRenderer(options('nginx', 18430));
    const live = await readFile(renderer.opts.output, 'utf8');
    const bad = join(dir, 'bad.conf.hbs');
    await writeFile(bad, (await readFile(new URL('../../templates/nginx.conf.hbs', import.meta.url), 'utf8')).replace('http {\n', 'http {\n  no_such_directive on;\n'));
    const err = await (await buildRenderer(options('nginx', 18430, { template: bad }))).sync({ web: [b(18471), b(18470)] }).catch((e: Error) => e);
    expect(String((err as Error).message)).toMatch(/nginx rejected .*nginx\.conf:\d+: unknown directive "no_such_directive" \(line: no_such_directive on;\)/);
    expect(await readFile(renderer.opts.output, 'utf8')).toBe(live);
    expect(await httpGet(18430)).toBe('b18471');
  });
});

describe('render with Varnish', () => {
  it('validates with varnishd -C and switches VCL with vcl.load/vcl.use', async () => {
    const { pid, work } = await startVarnishd(dir, 18440, 18441);
    varnishPid = pid;
    const opts = options('varnish', 18440, { varnish: { instance: work }, output: join(dir, 'out', 'elastic.vcl') });
    const r = await (await buildRenderer(opts)).sync({ web: [b(18470)] });
    expect(r.action).toBe('reload');
    await waitFor(async () => (await httpGet(18440)) === 'b18470', 'varnish serving the backend', 10_000, 100);
    await (await buildRenderer(opts)).sync({ web: [b(18470), b(18471)] });
    const seen = new Set<string>();
    await waitFor(async () => {
      seen.add(await httpGet(18440));
      return seen.size === 2;
    }, 'varnish round-robin over both backends', 10_000, 20);
  });

  it('--check validates a VCL through the CLI and says which line is wrong', async () => {
    const bad = join(dir, 'bad.vcl.hbs');
    await writeFile(bad, 'vcl 4.1;\nbackend default none;\nsub vcl_recv {\n  no_such_symbol;\n}\n');
    const r = await elastic(['render', '--proxy', 'varnish', '--service', 'web', '--bind', '18440', '--backend', '127.0.0.1:18470', '--template', bad, '--output', join(dir, 'check', 'x.vcl'), '--check'], { env });
    expect(r.exitCode).toBe(6);
    expect(r.stderr).toMatch(/varnish rejected .*x\.vcl:4: Symbol not found: 'no_such_symbol'/);
  });
});
