import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { join } from 'node:path';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { DeployFixture } from '../support/deploy.js';

/**
 * A render (HAProxy) in front of a deploy: a new replica is served only after it passed the
 * deploy's health gate. Before, render added every running container of the service at its start
 * event: a replica failing its HTTP gate served live responses until the rollback, and a
 * crash-looping one was served between its restarts. Real dockerd, HAProxy, built binary.
 * Port 23040.
 */
const PORT = 23040;

describe('deploy readiness reaches the load balancers', () => {
  const fx = new DeployFixture();
  let svc = '';
  let render: ReturnType<DeployFixture['run']> | null = null;
  const log: string[] = [];

  beforeAll(async () => {
    await requireDocker();
    await fx.setup();
    svc = fx.service('gate');
  });
  afterAll(async () => {
    await fx.stopRender(render, svc);
    await fx.cleanup();
  });

  /** Who answers through render, and which servers render has, every 100 ms while `during` runs. */
  async function observe<T>(during: Promise<T>): Promise<{ result: T; answered: Set<string>; servers: Set<string> }> {
    const answered = new Set<string>();
    const servers = new Set<string>();
    let done = false;
    const poll = (async () => {
      while (!done) {
        const id = await fetch(`http://127.0.0.1:${PORT}/id`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text(), () => 'ERR');
        answered.add(id.trim());
        const snap = await requestStatus<Snapshot>(join(fx.runDir, `render.${svc}.sock`)).catch(() => null);
        const view = snap?.services[svc] as { servers?: Array<{ backend: string }> } | undefined;
        for (const s of view?.servers ?? []) if (s.backend) servers.add(s.backend);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const result = await during.finally(() => (done = true));
    await poll;
    return { result, answered, servers };
  }

  const replicaIds = async () => new Set((await fx.containers(svc)).map((c) => c.Id.slice(0, 12)));

  it('a replica failing its HTTP gate, and a crash-looping one, never get a request; the good one keeps serving', async () => {
    onTestFailed(() => console.error(log.join('\n')));
    const good = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--health-http', '/healthz', '--min-healthy', '300ms', '--stop-timeout', '1']);
    expect(good.exitCode, String(good.stderr)).toBe(0);
    const [goodId] = [...(await replicaIds())];
    render = fx.run(['render', '--service', svc, '--bind', `127.0.0.1:${PORT}`, '--label', `elastic.service=${svc}`, '--port', '80', '--mode', 'http', '--start', '--watch', '--wait', '50ms:300ms'], { timeout: 300_000 });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${PORT}/id`).then((r) => r.text(), () => '')).trim() === goodId, 'render serving the good replica', 30_000, 200);

    // 1. A revision whose HTTP gate fails (404): its replicas run and answer, but never pass.
    const seen = new Set<string>();
    const watchIds = setInterval(() => void replicaIds().then((s) => s.forEach((id) => seen.add(id))), 100);
    const bad = await observe(fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--health-http', '/missing', '--health-deadline', '4s', '--failure-threshold', '1', '--stop-timeout', '1']));
    log.push(`bad gate: exit ${bad.result.exitCode}\n${String(bad.result.stderr)}`, `answered ${[...bad.answered]} servers ${[...bad.servers]} seen ${[...seen]}`);
    expect(bad.result.exitCode).toBe(6); // rolled back
    const badIds = [...seen].filter((id) => id !== goodId);
    expect(badIds.length).toBeGreaterThan(0);
    for (const id of badIds) {
      expect(bad.answered.has(id), `gate-failing replica ${id} answered a request`).toBe(false);
      expect([...bad.servers].some((b) => b.includes(id)), `gate-failing replica ${id} was a HAProxy server`).toBe(false);
    }
    expect([...bad.answered]).toEqual([goodId]);

    // 2. A revision that crash-loops (restart policy unless-stopped): up ~2 s, then exits 1.
    seen.clear();
    const loop = await observe(
      fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--cmd', 'hostname > /www/id; httpd -p 80 -h /www; sleep 2; exit 1', '--health-tcp', '--min-healthy', '3s', '--health-deadline', '20s', '--failure-threshold', '1', '--stop-timeout', '1']),
    );
    clearInterval(watchIds);
    log.push(`crash loop: exit ${loop.result.exitCode}\n${String(loop.result.stderr)}`, `answered ${[...loop.answered]} servers ${[...loop.servers]} seen ${[...seen]}`);
    expect(loop.result.exitCode).toBe(6);
    const loopIds = [...seen].filter((id) => id !== goodId);
    expect(loopIds.length).toBeGreaterThan(0);
    for (const id of loopIds) expect(loop.answered.has(id), `crash-looping replica ${id} answered a request`).toBe(false);
    expect([...loop.answered]).toEqual([goodId]);
  });
});
