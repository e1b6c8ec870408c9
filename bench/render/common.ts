import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { serviceSpec } from '../../src/engine/frontends/services.js';
import { buildRenderer, defaultPaths, type RenderOptions } from '../../src/engine/render.js';
import { LocalBackends } from '../../test/support/render-backends.js';

/** A temp world for render benchmarks: local busybox backends, HAProxy we start and stop. */
export async function world(instance: string, frontPort: number, backendPorts: number[]) {
  const dir = await mkdtemp(join(tmpdir(), `elastic-bench-${instance}-`));
  const env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  const backends = new LocalBackends();
  await backends.start(backendPorts);
  const options = (extra: { checkMs?: number; template?: string } = {}): RenderOptions => ({
    instance,
    proxy: 'haproxy',
    services: [{ spec: serviceSpec('web', { bind: `127.0.0.1:${frontPort}`, 'lb-check': 'tcp', 'lb-check-interval': extra.checkMs ?? 2000 }), discover: {} }],
    start: true,
    template: extra.template,
    guard: { minBackends: 1, maxChangePct: 100, force: true },
    env,
  });
  return {
    dir,
    options,
    renderer: (extra: { checkMs?: number; template?: string } = {}) => buildRenderer(options(extra)),
    backend: (port: number) => staticBackend('127.0.0.1', port, 'web'),
    async close() {
      const d = defaultPaths(instance, 'haproxy', env);
      await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop();
      await backends.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
