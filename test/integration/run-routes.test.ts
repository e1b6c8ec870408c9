import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStop } from '../../src/engine/render.js';
import { elastic } from '../support/cli.js';
import { waitFor } from '../support/docker.js';
import { NamedBackends, getWithHost } from '../support/route-backends.js';

// Issue 16 item 1 in `elastic run`: services of one proxy share a port, routed by host and path,
// with a default_service; real HAProxy (25150) and nginx (25151); backends 25152-25154.
const backends = new NamedBackends();
let dir: string;
let env: NodeJS.ProcessEnv;
let daemon: ReturnType<typeof elastic> | null = null;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'el-run-rt-'));
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  await backends.start({ api: 25152, v2: 25153, web: 25154 });
});

afterAll(async () => {
  if (daemon) {
    daemon.kill('SIGTERM');
    await daemon;
  }
  // The daemon leaves its proxies serving when it stops (docs/run.md): stop ours.
  await renderStop({ instance: 'run-rt', proxy: 'haproxy', env, timeoutMs: 5000 }).catch(() => {});
  await renderStop({ instance: 'run-rt-nginx', proxy: 'nginx', env, timeoutMs: 5000 }).catch(() => {});
  await backends.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('elastic run: services sharing a HAProxy and an nginx port by host and path', () => {
  it('every route reaches its service on both proxies; the rest goes to default_service', async () => {
    const src = (port: number) => `{ static: { backends: ["127.0.0.1:${port}"] } }`;
    const file = join(dir, 'elastic.yaml');
    await writeFile(
      file,
      `version: 1
name: rt
sources:
  api: ${src(25152)}
  v2: ${src(25153)}
  web: ${src(25154)}
default_service: web
services:
  - { name: api, sources: [api], haproxy: { port: 25150, hosts: [api.example.com] }, nginx: { port: 25151, hosts: [api.example.com] } }
  - { name: v2, sources: [v2], haproxy: { port: 25150, hosts: [api.example.com], paths: [/v2], strip_prefix: true }, nginx: { port: 25151, hosts: [api.example.com], paths: [/v2], strip_prefix: true } }
  - { name: web, sources: [web], haproxy: { port: 25150 }, nginx: { port: 25151 } }
sync: { min_interval_ms: 50 }
`,
    );
    daemon = elastic(['run', '-c', file], { env, timeout: 120_000 });
    for (const port of [25150, 25151]) {
      await waitFor(async () => (await getWithHost(port, 'api.example.com', '/x')).body === 'api /x', `api on ${port}`, 30_000, 200);
      expect((await getWithHost(port, 'API.example.com:80', '/v2/users')).body).toBe('v2 /users');
      expect((await getWithHost(port, 'api.example.com', '/v2x')).body).toBe('api /v2x');
      expect((await getWithHost(port, 'other.example.com', '/v2/users')).body).toBe('web /v2/users');
    }
  });
});
