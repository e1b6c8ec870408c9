import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPaths, renderStop } from '../../src/engine/render.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { elastic } from '../support/cli.js';
import { TestContainers, docker, requireDocker } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { getWithHost } from '../support/route-backends.js';
import { removeNetwork, serves } from '../support/label-routes.js';

// Issue 16: `routes_from_labels:` in elastic.yaml (render --routes-from-labels inside elastic run),
// real containers on our own network 198.18.62.0/24, real HAProxy and nginx; and error_page_503 in run.
// Ports (this area's range 25900-25999): front door 25920 (HAProxy) / 25922 (nginx), an empty declared service 25921 / 25923.
const tc = new TestContainers();
const NET = `elastic-rl-${process.pid}`;
let network: Docker.Network | null = null;
let dir: string;
let env: NodeJS.ProcessEnv;
const daemons: Array<ReturnType<typeof elastic>> = [];
const PROXIES = [
  { proxy: 'haproxy' as const, front: 25920, empty: 25921, name: 'rl-h', instance: 'run-rl-h' },
  { proxy: 'nginx' as const, front: 25922, empty: 25923, name: 'rl-n', instance: 'run-rl-n-nginx' },
];
const CMD = ['sh', '-c', 'mkdir -p /www/b && hostname > /www/id && hostname > /www/b/id && exec httpd -f -p 80 -h /www'];
const run = (labels: Record<string, string>) => tc.run({ network: NET, labels, cmd: CMD });
const hostnameOf = async (c: Docker.Container) => (await c.inspect()).Config.Hostname;
const PAGE = '<!doctype html><title>Back soon</title><p>$maintenance # window</p>\n';

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'el-run-lb-'));
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  network = await docker.createNetwork({ Name: NET, Driver: 'bridge', IPAM: { Config: [{ Subnet: '198.18.62.0/24' }] }, Labels: { 'elastic.test': tc.runId } });
  await writeFile(join(dir, '503.html'), PAGE);
});

afterAll(async () => {
  for (const d of daemons) {
    d.kill('SIGTERM');
    await d.catch(() => {});
  }
  // The daemon leaves its proxies serving when it stops (docs/run.md): stop ours.
  for (const p of PROXIES) await renderStop({ instance: p.instance, proxy: p.proxy, env, timeoutMs: 5000 }).catch(() => {});
  await tc.cleanup();
  if (network) await removeNetwork(network);
  await rm(dir, { recursive: true, force: true });
});


const HOSTILE: Array<Record<string, string>> = [
  { 'elastic.http.host': 'a.com;' },
  { 'elastic.http.host': '{{host}}.example.com' },
  { 'elastic.http.host': 'ok.example.com\n  server evil 198.18.62.99:80' },
  { 'elastic.http.host': '$host' },
  { 'elastic.http.host': `${'abcdefghi.'.repeat(30)}com` },
  { 'elastic.http.host': 'p.example.com', 'elastic.http.path': '/x;return 200' },
];

describe.each(PROXIES)('elastic run: routes_from_labels on $proxy', ({ proxy, front, empty: emptyPort, name, instance }) => {
  it('labelled containers are served on the front door next to declared services; add, relabel, stop follow; hostile labels are skipped', async () => {
    try {
      const file = join(dir, `${name}.yaml`);
      await writeFile(
        file,
        `version: 1
name: ${name}
error_page_503: ${join(dir, '503.html')}
sources:
  none: { static: { backends: [] } }
services:
  - { name: empty, sources: [none], guardrails: { min_backends: 0 }, ${proxy}: { port: ${emptyPort} } }
routes_from_labels:
  ${proxy}: { port: ${front} }
  network: ${NET}
  label: [elastic.test=${tc.runId}]
sync: { min_interval_ms: 50 }
`,
      );
      const check = await elastic(['run', '-c', file, '--check'], { env });
      expect(check.exitCode, String(check.stderr)).toBe(0);
      const daemon = elastic(['run', '-c', file], { env, timeout: 300_000 });
      daemons.push(daemon);
      const err = new LineReader(daemon.stderr!);
      // Before any container is labelled: the 404 page; the declared empty service: the custom 503 page.
      await serves(front, 'a.example.com', '/id', 404, 'the front door up, 404 before any label');
      const empty = await getWithHost(emptyPort, 'x', '/');
      expect([empty.status, empty.headers['retry-after'], empty.body]).toEqual([503, '5', PAGE.trim()]);

      const a = await run({ 'elastic.http.host': 'a.example.com' });
      await serves(front, 'a.example.com', '/id', await hostnameOf(a), 'a.example.com served by its container');
      const b = await run({ 'elastic.http.host': 'a.example.com,b.example.com', 'elastic.http.path': '/b' });
      await serves(front, 'b.example.com', '/b/id', await hostnameOf(b), 'b.example.com/b served');
      // nginx: an old worker may still accept a connection for a moment after the reload (as in
      // render-labels.test.ts), so the other host of the same container is waited for too.
      await serves(front, 'a.example.com', '/b/id', await hostnameOf(b), 'a.example.com/b served by the path-labelled container');
      expect((await getWithHost(front, 'a.example.com', '/id')).body).toBe(await hostnameOf(a));
      // The status socket (what `top` reads) lists the label routes with their containers.
      const snap = await requestStatus<Snapshot>(join(dir, 'run', `run.${name}.sock`));
      const route = Object.entries(snap.services).find(([k]) => k.startsWith('b.example.com_b-'))?.[1] as { sources: string[]; servedBy: string[]; backends: unknown[]; appliers: Record<string, unknown> };
      expect([route.sources, route.servedBy, route.backends.length, Object.keys(route.appliers)]).toEqual([['labels'], [proxy], 1, [proxy]]);

      const hostile = await Promise.all(HOSTILE.map((labels) => run(labels)));
      for (const c of hostile) await err.next((l) => new RegExp(`skipping container (docker:)?${c.id.slice(0, 12)}`).test(l), `a skip line for ${c.id.slice(0, 12)}`, 30_000);
      const config = await readFile(defaultPaths(instance, proxy, env).output, 'utf8');
      for (const bad of ['a.com;', '{{', 'evil', 'abcdefghi.abcdefghi', 'p.example.com', '198.18.62.99']) expect(config, bad).not.toContain(bad);
      expect(config).not.toMatch(/(server_name|var\(txn\.host\)).*\$host/);
      // The declared service is still there, next to the label routes, in the same HAProxy.
      expect(config).toContain(proxy === 'haproxy' ? 'be_empty' : 'u_empty');

      // Relabel (a container's labels are fixed: it is replaced), then stop.
      await a.remove({ force: true });
      const c = await run({ 'elastic.http.host': 'c.example.com' });
      await serves(front, 'c.example.com', '/id', await hostnameOf(c), 'the relabelled host served');
      await serves(front, 'a.example.com', '/id', 404, 'the old host gone: the 404 page');
      await b.stop({ t: 1 });
      await serves(front, 'b.example.com', '/b/id', 404, 'the stopped container\'s route gone');
      expect((await getWithHost(front, 'c.example.com', '/id')).body).toBe(await hostnameOf(c));
      // An empty static list is a source of no backends (it once fell back to every container).
      expect((await getWithHost(emptyPort, 'x', '/')).status).toBe(503);
    } finally {
      for (const d of daemons) d.kill('SIGTERM'); // the next proxy's case has its own daemon
      await tc.cleanup(); // and starts with no labelled container
    }
  });
});

describe('elastic run --check: routes_from_labels and error_page_503 are validated with file:line', () => {
  it.each([
    ['a port a service uses too', 'sources:\n  s: { static: { backends: ["127.0.0.1:1"] } }\nservices:\n  - { name: s, sources: [s], haproxy: { port: 25930 } }\nroutes_from_labels:\n  haproxy: { port: 25930 }\n', /bad\.yaml:7: routes_from_labels\.haproxy\.port: 127\.0\.0\.1:25930 is already used by services\[0\]\.haproxy\.port/],
    ['both proxies', 'routes_from_labels:\n  haproxy: { port: 25930 }\n  nginx: { port: 25931 }\n', /bad\.yaml:3: routes_from_labels: has haproxy and nginx/],
    ['a hostile label selector', 'routes_from_labels:\n  haproxy: { port: 25930 }\n  label: ["a b"]\n', /bad\.yaml:4: routes_from_labels\.label/],
    ['a 503 page writable by others', 'routes_from_labels:\n  haproxy: { port: 25930, error_page_503: PAGE }\n', /bad\.yaml:3: routes_from_labels\.haproxy\.error_page_503: error page .*writable by group or others/],
  ])('%s', async (_what, body, message) => {
    const loose = join(dir, 'loose.html');
    await writeFile(loose, PAGE);
    await chmod(loose, 0o666);
    const file = join(dir, 'bad.yaml');
    await writeFile(file, `version: 1\n${body.replace('PAGE', loose)}`);
    const r = await elastic(['run', '-c', file, '--check'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(5);
    expect(String(r.stderr)).toMatch(message);
  });
});
