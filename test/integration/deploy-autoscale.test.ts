import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { DeployFixture } from '../support/deploy.js';
import { StatusServer } from '../../src/engine/runtime/status.js';

/**
 * Autoscaling with a synthetic load: a status socket of kind `edge` served by the test, whose
 * queued count we control, is the metrics source of a real `elastic deploy --autoscale-max`.
 */
describe('elastic deploy: autoscaling (real dockerd, synthetic edge load)', () => {
  const fx = new DeployFixture();
  let edge: StatusServer | null = null;

  beforeAll(async () => {
    await requireDocker();
    await fx.setup();
  });
  afterAll(async () => {
    await edge?.close();
    await fx.cleanup();
  });

  it('scales up within its window and down after its delay; decisions and reasons in status', async () => {
    const svc = fx.service('auto');
    let queued = 0;
    edge = new StatusServer({ kind: 'edge', name: `dpl-edge-${fx.tag}`, dir: fx.runDir, services: () => ({ [svc]: { queued, active: 0, capacity: 10 } }) });
    await edge.listen();

    const child = fx.run(
      [
        'deploy', TEST_IMAGE, '--name', svc, '--port', '80',
        '--autoscale-min', '1', '--autoscale-max', '3', '--autoscale-target', '5',
        '--autoscale-interval', '250ms', '--stable-window', '2s', '--panic-window', '500ms',
        '--scale-down-delay', '3s', '--scale-down-cooldown', '1s',
        '--min-healthy', '200ms', '--stop-timeout', '1', '--drain-timeout', '1s',
      ],
      { timeout: 120_000 },
    );
    try {
      const running = async () => (await fx.containers(svc, false)).length;
      await waitFor(async () => (await running()) === 1, 'the first replica', 20_000, 100);

      queued = 15; // needs 3 replicas of target 5
      const t0 = Date.now();
      await waitFor(async () => (await running()) === 3, 'a scale-up to 3', 15_000, 100);
      const upMs = Date.now() - t0;
      expect(upMs).toBeLessThan(2_000 + 5_000); // within the stable window (plus creation and gate)

      const st = await fx.run(['deploy', 'status', svc, '--json']);
      const view = JSON.parse(String(st.stdout)).services[0];
      expect(view.desired).toBe(3);
      expect(view.autoscale).toMatchObject({ min: 1, max: 3, metric: 'concurrency', target: 5 });
      expect(view.autoscale.last.reason).toMatch(/\w+/);

      queued = 0;
      const t1 = Date.now();
      await waitFor(async () => (await running()) === 1, 'a scale-down to 1', 30_000, 100);
      expect(Date.now() - t1).toBeGreaterThanOrEqual(3_000); // not before the scale-down delay
    } finally {
      child.kill('SIGTERM');
      const r = await child;
      expect(String(r.stderr)).toMatch(/autoscale 1 -> 3: .*(panic|load)/);
      expect(String(r.stderr)).toMatch(/autoscale 3 -> 1: load below 3 replicas/);
    }
  }, 120_000);
});
