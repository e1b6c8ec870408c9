import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa } from 'execa';
import { docker, requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { DeployFixture, FAST } from '../support/deploy.js';
import { createClientNamespace, type ClientNamespace } from '../support/netns.js';

/**
 * A rolling update under a bounded wrk load, through the load balancers elastic runs: `render
 * --watch` (HAProxy, runtime API) and `map-image --watch` (kernel DNAT, from a client namespace in
 * 198.19.6.0/24). Deploy drains each old replica through their status sockets before stopping it:
 * 0 failed requests.
 */
const RENDER_PORT = 18610;
const MAP_PORT = 18611;

/** wrk's summary -> requests and every kind of failure it counts. */
function wrkResult(out: string): { requests: number; errors: number; non2xx: number } {
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return { requests, errors, non2xx };
}

describe('elastic deploy: rolling update under load through map-image and render', () => {
  const fx = new DeployFixture();
  const image = `elastic-test/dpl-${fx.tag}:1`;
  const children: Array<ReturnType<DeployFixture['run']>> = [];
  let ns: ClientNamespace | null = null;

  beforeAll(async () => {
    await requireDocker();
    await fx.setup();
    await docker.getImage(TEST_IMAGE).tag({ repo: `elastic-test/dpl-${fx.tag}`, tag: '1' });
  });
  afterAll(async () => {
    for (const c of children) {
      c.kill('SIGTERM');
      await c;
    }
    await fx.run(['map-image', 'stop', String(MAP_PORT)]).catch(() => {});
    await fx.stopRender(null, `dpllb${fx.tag}`); // the render child is among `children`
    await ns?.cleanup();
    await fx.cleanup();
    await docker.getImage(image).remove({ noprune: true }).catch(() => {});
  });

  it('0 failed requests through render (HAProxy) and through map-image (DNAT)', async () => {
    const svc = fx.service('lb');
    const log: string[] = [];
    onTestFailed(() => console.error(log.join('\n')));
    const deploy = async (env: string) => {
      const r = await fx.run(['deploy', image, '--name', svc, '-r', '3', '--port', '80', '--env', `V=${env}`, '--stop-timeout', '1', '--drain-timeout', '3s', '--min-healthy', '1500ms']);
      log.push(`deploy V=${env}: ${r.exitCode}\n${String(r.stderr)}`);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      return String(r.stderr);
    };
    await deploy('1');

    const render = fx.run(
      ['render', '--service', svc, '--bind', `127.0.0.1:${RENDER_PORT}`, '--label', `elastic.service=${svc}`, '--port', '80', '--start', '--watch', '--wait', '50ms:500ms', '--lb-check-interval', '300'],
      { timeout: 240_000 },
    );
    // --check tcp: a new replica is DNATed to only once it accepts connections (Docker says
    // "running" before the app listens; without the check one connection in a few runs was refused).
    const map = fx.run(['map-image', String(MAP_PORT), image, '80', '--watch', '--check', 'tcp', '--check-interval', '200'], { timeout: 240_000 });
    children.push(render, map);
    ns = await createClientNamespace({ name: 'dpl-lb', prefix: '198.19.6', index: 0 });
    const mapUrl = `http://${ns.hostAddress}:${MAP_PORT}/id`;
    const renderUrl = `http://127.0.0.1:${RENDER_PORT}/id`;

    const ids = async () => new Set((await fx.containers(svc, false)).map((c) => c.Id.slice(0, 12)));
    const servedByRender = async (n: number) => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) seen.add((await (await fetch(renderUrl, { signal: AbortSignal.timeout(2000) })).text()).trim());
      return seen;
    };
    const want = await ids();
    await waitFor(async () => (await servedByRender(12)).size === 3, 'render serving the 3 replicas', 30_000, 200);
    await waitFor(async () => [...(await ns!.httpSpread(mapUrl, 30)).keys()].filter((k) => want.has(k)).length === 3, 'map-image serving the 3 replicas', 30_000, 200);

    // Under load: HAProxy with keep-alive clients; DNAT with a new connection per request (an
    // established TCP flow cannot move to another backend, and map-image drains new flows only).
    // Bounded: at most 90 s, stopped with SIGINT (wrk then prints its summary) once the rollout is done.
    // 4 + 4 connections: the test app (busybox httpd) listens with a backlog of 9, and more
    // connections than that in flight to one replica overflow its accept queue: the kernel drops
    // the SYN and the client resends it 1 s later (p99 0.9 s, and now and then a 2 s wrk timeout,
    // with 8 + 8; the app's limit, not the load balancers'). With 8 in all it cannot overflow.
    const wrkRender = execa('wrk', ['-t1', '-c4', '-d90s', renderUrl], { reject: false, timeout: 120_000 });
    const wrkMap = execa('ip', ['netns', 'exec', 'dpl-lb', 'wrk', '-t1', '-c4', '-d90s', '-H', 'Connection: close', mapUrl], { reject: false, timeout: 120_000 });
    await new Promise((r) => setTimeout(r, 1000));
    const progress = await deploy('2');
    await new Promise((r) => setTimeout(r, 1000));
    wrkRender.kill('SIGINT');
    wrkMap.kill('SIGINT');
    const [r1, r2] = await Promise.all([wrkRender, wrkMap]);
    log.push(`wrk render:\n${r1.stdout}\n${r1.stderr}`, `wrk map-image:\n${r2.stdout}\n${r2.stderr}`);

    // Deploy drained each old replica through both load balancers' status sockets.
    expect(progress).toMatch(/drain \w+: .*render\.dpllb\w+: drained/);
    expect(progress).toMatch(/drain \w+: .*map-image\.[\w-]+: drained/);

    const viaRender = wrkResult(r1.stdout);
    const viaMap = wrkResult(r2.stdout);
    expect(viaRender.requests).toBeGreaterThan(1000);
    expect(viaMap.requests).toBeGreaterThan(200);
    expect(viaRender).toMatchObject({ errors: 0, non2xx: 0 });
    expect(viaMap).toMatchObject({ errors: 0, non2xx: 0 });

    // And now only the new replicas answer.
    const now = await ids();
    expect([...now].some((id) => want.has(id))).toBe(false);
    await waitFor(async () => [...(await servedByRender(12))].every((id) => now.has(id)), 'render serving only the new replicas', 10_000, 200);
  }, 180_000);
});
