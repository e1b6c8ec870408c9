/**
 * Failed requests over membership changes under keep-alive load, for all three proxies:
 * `render --watch` over real containers, wrk -c10 plus a keep-alive client of our own (4
 * connections, no retries) while 3 containers are added one by one and then removed one by one
 * with `docker rm -f` (the load lasts until every change is done, at most 150 s). Usage:
 *   npx tsx bench/render/membership.ts [haproxy,nginx,varnish] [template-dir]
 * (a template dir with haproxy.cfg.hbs / nginx.conf.hbs / varnish.vcl.hbs compares other templates,
 * e.g. the ones before the fix: git show adc3c7d:templates/nginx.conf.hbs).
 * Ports 25010 (haproxy), 25011 (nginx), 25012 (varnish, admin 25013). Needs dockerd, the test
 * image, haproxy, nginx, varnishd, wrk (scripts/test-host.sh).
 */
import { execa } from 'execa';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { TestContainers, requireDocker } from '../../test/support/docker.js';
import { startVarnishd } from '../../test/support/render-backends.js';
import { membershipUnderLoad, stopWatches } from '../../test/support/render-membership.js';

const proxies = (process.argv[2] ?? 'haproxy,nginx,varnish').split(',');
const templates = process.argv[3];
const FILE = { haproxy: 'haproxy.cfg.hbs', nginx: 'nginx.conf.hbs', varnish: 'varnish.vcl.hbs' } as const;
await requireDocker();
const dir = await mkdtemp(join(tmpdir(), 'elastic-bench-mship-'));
await chmod(dir, 0o755);
const env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
const tc = new TestContainers();
let varnishPid = 0;
try {
  for (const proxy of proxies as Array<keyof typeof FILE>) {
    const tpl = templates ? ['--template', join(templates, FILE[proxy])] : [];
    let extra: string[];
    if (proxy === 'varnish') {
      varnishPid = (await startVarnishd(dir, 25012, 25013)).pid;
      extra = ['--proxy', 'varnish', '--varnish-name', join(dir, 'varnish'), '--lb-check', 'http:/id', ...tpl];
    } else extra = ['--proxy', proxy, '--start', ...tpl];
    const port = { haproxy: 25010, nginx: 25011, varnish: 25012 }[proxy];
    const { r, k, underLoad, cut } = await membershipUnderLoad(tc, env, `bm${proxy}`, port, extra, proxy === 'varnish' ? '1500ms:3s' : '100ms:500ms');
    console.log(`${proxy}: ${underLoad ? 'every change under load' : 'NOT every change under load (150 s bound)'}; load average ${loadavg()[0]!.toFixed(1)}; wrk ${r.requests} requests, non-2xx ${r.non2xx}, socket errors ${r.socketErrors}; own client ${k.requests} requests, ${k.failures.length} failed${k.failures.length ? ` (${[...new Set(k.failures.map((f) => f.what))].join(', ')})` : ''}${proxy === 'nginx' ? `; responses cut by docker rm -f (nginx log): ${cut}` : ''}`);
    await stopWatches();
  }
} finally {
  await stopWatches();
  const h = defaultPaths('bmhaproxy', 'haproxy', env);
  await new HaproxyProcess({ config: h.output, masterSocket: h.masterSocket, pidFile: h.pidFile }).stop().catch(() => {});
  const n = Number(await readFile(defaultPaths('bmnginx', 'nginx', env).pidFile, 'utf8').catch(() => '0'));
  if (n > 1 && pidAlive(n)) process.kill(n, 'SIGQUIT');
  if (varnishPid > 1 && pidAlive(varnishPid)) process.kill(varnishPid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
}
