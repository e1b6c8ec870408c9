import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPaths, renderStop } from '../../src/engine/render.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { elastic } from '../support/cli.js';
import { TestContainers, docker, requireDocker, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { getWithHost } from '../support/route-backends.js';
import { removeNetwork, serves } from '../support/label-routes.js';

// Issue 16 item 3: routes from container labels under `render --routes-from-labels --watch`,
// real containers on our own network 198.18.51.0/24, real HAProxy and nginx. Ports: front door
// 25130 (HAProxy), 25131 (nginx).
const tc = new TestContainers();
const NET = `elastic-fd-${process.pid}`;
let network: Docker.Network | null = null;
let dir: string;
const watches: Array<ReturnType<typeof elastic>> = [];
const envOf = (instance: string) => ({ ELASTIC_STATE_DIR: join(dir, instance, 'state'), ELASTIC_RUN_DIR: join(dir, instance, 'run') });
// The web image serves /id (its hostname); this also serves it under /b.
const CMD = ['sh', '-c', 'mkdir -p /www/b && hostname > /www/id && hostname > /www/b/id && exec httpd -f -p 80 -h /www'];
const run = (labels: Record<string, string>) => tc.run({ network: NET, labels, cmd: CMD });
const hostnameOf = async (c: Docker.Container) => (await c.inspect()).Config.Hostname;

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'el-labels-'));
  network = await docker.createNetwork({ Name: NET, Driver: 'bridge', IPAM: { Config: [{ Subnet: '198.18.51.0/24' }] }, Labels: { 'elastic.test': tc.runId } });
});

afterAll(async () => {
  for (const w of watches) {
    w.kill('SIGTERM');
    await w.catch(() => {});
  }
  for (const proxy of ['haproxy', 'nginx'] as const) await renderStop({ instance: `lb-${proxy[0]}`, proxy, env: envOf(`lb-${proxy[0]}`), timeoutMs: 5000 }).catch(() => {});
  await tc.cleanup();
  if (network) await removeNetwork(network);
  await rm(dir, { recursive: true, force: true });
});


const HOSTILE: Array<[string, Record<string, string>]> = [
  ['a.com;', { 'elastic.http.host': 'a.com;' }],
  ['{{', { 'elastic.http.host': '{{host}}.example.com' }],
  ['newline', { 'elastic.http.host': 'ok.example.com\n  server evil 198.18.51.99:80' }],
  ['spaces', { 'elastic.http.host': 'a b.example.com' }],
  ['$host', { 'elastic.http.host': '$host' }],
  ['300-character name', { 'elastic.http.host': `${'abcdefghi.'.repeat(30)}com` }],
  ['a hostile path', { 'elastic.http.host': 'p.example.com', 'elastic.http.path': '/x;return 200' }],
  ['a hostile port', { 'elastic.http.host': 'q.example.com', 'elastic.http.port': '80;' }],
];

describe.each([
  { proxy: 'haproxy', port: 25130 },
  { proxy: 'nginx', port: 25131 },
] as const)('render --routes-from-labels --watch: $proxy', ({ proxy, port }) => {
  it('containers labelled with hosts and paths are served; add, relabel, stop follow; hostile labels never reach the config', async () => {
    const instance = `lb-${proxy[0]}`;
    try {
      const w = elastic(['render', '--proxy', proxy, '--routes-from-labels', '--bind', `127.0.0.1:${port}`, '--network', NET, '--label', `elastic.test=${tc.runId}`, '--instance-name', instance, '--start', '--watch', '--wait', '50ms:200ms', '--json'], { env: envOf(instance), timeout: 300_000 });
      watches.push(w);
      const out = new LineReader(w.stdout!);
      const err = new LineReader(w.stderr!);
      await out.json<{ action: string }>((r) => r.action === 'start', `${proxy} started`, 30_000);
      // No container yet: the front door answers the 404 page.
      expect((await getWithHost(port, 'a.example.com', '/id')).status).toBe(404);

      const a = await run({ 'elastic.http.host': 'a.example.com' });
      await serves(port, 'a.example.com', '/id', await hostnameOf(a), 'a.example.com served by its container');
      const b = await run({ 'elastic.http.host': 'a.example.com,B.example.com', 'elastic.http.path': '/b', 'elastic.http.port': '80', 'elastic.weight': '2' });
      await serves(port, 'a.example.com', '/b/id', await hostnameOf(b), 'a.example.com/b served by the path-labelled container');
      // nginx: an old worker may accept a new connection for a moment after the reload (it closes
      // its listening sockets when it handles QUIT), so the second host is waited for too.
      await serves(port, 'b.example.com', '/b/id', await hostnameOf(b), 'b.example.com/b served by the same container');
      expect((await getWithHost(port, 'a.example.com', '/id')).body).toBe(await hostnameOf(a));
      expect((await getWithHost(port, 'b.example.com', '/id')).status).toBe(404);

      // Hostile label values: each container is skipped with a logged reason; nothing of it is rendered.
      const hostile = await Promise.all(HOSTILE.map(([, labels]) => run(labels)));
      for (const c of hostile) await err.next((l) => new RegExp(`skipping container (docker:)?${c.id.slice(0, 12)}: `).test(l), `a skip line for ${c.id.slice(0, 12)}`, 30_000);
      const config = await readFile(defaultPaths(instance, proxy, envOf(instance)).output, 'utf8');
      for (const bad of ['a.com;', '{{', 'evil', 'a b.example.com', 'abcdefghi.abcdefghi', 'p.example.com', 'q.example.com', '198.18.51.99']) expect(config, bad).not.toContain(bad);
        // nginx's own `proxy_set_header Host $host` is ours; a label's `$host` would be a host name.
        expect(config).not.toMatch(/(server_name|var\(txn\.host\)).*\$host/);
      expect((await getWithHost(port, 'a.example.com', '/id')).body).toBe(await hostnameOf(a));

      // Relabel (labels are fixed per container: the container is replaced by one with other labels).
      await a.remove({ force: true });
      const a2 = await run({ 'elastic.http.host': 'c.example.com' });
      await serves(port, 'c.example.com', '/id', await hostnameOf(a2), 'the relabelled host served');
      await serves(port, 'a.example.com', '/id', 404, 'the old host gone: the 404 page');
      if (proxy === 'haproxy') {
        // Another container for a known route is membership only: the runtime API, no reload.
        const from = out.lines.length;
        await run({ 'elastic.http.host': 'c.example.com' });
        const joined = await out.json<{ action: string; backends: Record<string, number> }>((x) => Object.entries(x.backends ?? {}).some(([k, n]) => k.startsWith('c.example.com') && n === 2), 'a second c.example.com container applied', 30_000, from);
        expect(joined.action).toBe('runtime');
      }
      expect((await getWithHost(port, 'a.example.com', '/b/id')).body).toBe(await hostnameOf(b));

      // Stop: the route leaves with its last container.
      await b.stop({ t: 1 });
      await serves(port, 'a.example.com', '/b/id', 404, 'the stopped container\'s route gone');
      expect((await getWithHost(port, 'c.example.com', '/id')).body).toBe(await hostnameOf(a2));

      if (proxy === 'haproxy') {
        // A HAProxy that --start manages and that dies is started again from the live config.
        const pid = Number((await readFile(defaultPaths(instance, proxy, envOf(instance)).pidFile, 'utf8')).trim());
        process.kill(pid, 'SIGKILL');
        await waitFor(() => !pidAlive(pid), 'haproxy master gone', 5000);
        await err.next((l) => /haproxy is not running; restarting it/.test(l), 'the restart line', 20_000);
        await serves(port, 'c.example.com', '/id', await hostnameOf(a2), 'served again after the restart');
      }
    } finally {
      await tc.cleanup(); // the next proxy's case starts with no labelled container
    }
  });
});
