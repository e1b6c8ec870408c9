import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { PrivateDockerd } from '../support/private-dockerd.js';
import { DeployFixture, FAST } from '../support/deploy.js';

/**
 * Docker lost in the middle of a rollout (a private dockerd, stopped mid-rollout): the run stops
 * with a clear error and exit 3, the state says `interrupted`, and the next run resumes from the
 * containers that exist and converges.
 */
describe('elastic deploy: Docker lost mid-rollout', () => {
  const dockerd = new PrivateDockerd();
  let fx: DeployFixture;

  beforeAll(async () => {
    await requireDocker();
    await dockerd.start();
    await dockerd.prepare();
    fx = new DeployFixture(dockerd.client());
    await fx.setup();
  }, 120_000);
  afterAll(async () => {
    await fx?.cleanup().catch(() => {});
    await dockerd.destroy();
  }, 120_000);

  it('stops safely with a clear error, then resumes on the next run and converges', async () => {
    const svc = fx.service('lost');
    const host = ['--docker-host', dockerd.host];
    const v1 = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '2', '--port', '80', ...host, ...FAST, '--json']);
    expect(v1.exitCode, String(v1.stderr)).toBe(0);
    const rev1 = JSON.parse(String(v1.stdout)).revision as string;

    // v2 with a long minimum healthy time, so the rollout is surely in flight when dockerd goes.
    const v2args = ['deploy', TEST_IMAGE, '--name', svc, '-r', '2', '--port', '80', '--env', 'V=2', ...host, '--min-healthy', '5s', '--stop-timeout', '1'];
    const child = fx.run(v2args);
    let ended = '';
    void child.then((r) => (ended = `v2 ended early: ${r.exitCode} ${String(r.stderr)}`));
    await waitFor(async () => {
      if (ended) throw new Error(ended);
      return (await fx.containers(svc)).some((c) => c.Labels['elastic.revision'] !== rev1);
    }, 'a v2 container', 20_000, 100);
    await dockerd.kill('SIGTERM');
    const lost = await child;
    expect(lost.exitCode, String(lost.stderr)).toBe(3);
    expect(String(lost.stderr)).toMatch(/error: Docker lost in the middle of the rollout of dpllost\w+/);
    expect(String(lost.stderr)).toMatch(/try: nothing more was changed; when Docker is back, re-run the same command/);
    const state = JSON.parse(await readFile(join(fx.stateDir, `deploy-${svc}.json`), 'utf8'));
    expect(state.phase).toBe('interrupted');
    expect(state.previous.revision).toBe(rev1);

    // Status while Docker is down: a clear error, not a hang.
    const down = await fx.run(['deploy', 'status', svc, ...host]);
    expect(down.exitCode).toBe(3);

    await dockerd.start();
    // The same command (or a smaller --min-healthy: pacing is not part of the revision) resumes.
    const again = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '2', '--port', '80', '--env', 'V=2', ...host, ...FAST, '--json']);
    expect(again.exitCode, String(again.stderr)).toBe(0);
    const res = JSON.parse(String(again.stdout));
    expect(res.phase).toBe('steady');
    expect(res.previous).toBe(rev1);
    await waitFor(async () => {
      const list = await fx.containers(svc);
      return list.length === 2 && list.every((c) => c.Labels['elastic.revision'] === res.revision && c.State === 'running');
    }, 'two running v2 replicas and no v1', 30_000, 200);
  }, 180_000);
});
