import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { DeployFixture, FAST } from '../support/deploy.js';
import { LineReader } from '../support/lines.js';

/**
 * What an operator sees of a deploy: a --watch deploy that stays steady (no health gate re-run
 * every tick), `previous` after an automatic rollback, `deploy rollback --dry-run`, progress that
 * follows every step, a summary printed once, and `deploy status` listing only this state
 * directory's services. Real dockerd, built binary. No ports.
 */
describe('deploy as an operator sees it', () => {
  const fx = new DeployFixture();
  beforeAll(async () => {
    await requireDocker();
    await fx.setup();
  });
  afterAll(() => fx.cleanup());

  it('--watch stays steady: the health gate is not re-run for serving replicas every tick', async () => {
    const svc = fx.service('steady');
    const child = fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '2', '--port', '80', '--watch', ...FAST], { timeout: 120_000 });
    const err = new LineReader(child.stderr!);
    try {
      const sock = join(fx.runDir, `deploy.${svc}.sock`);
      await waitFor(() => existsSync(sock), 'the status socket', 20_000, 50);
      await waitFor(async () => {
        const v = (await requestStatus<Snapshot>(sock)).services[svc] as { phase: string; ready: number };
        return v.phase === 'steady' && v.ready === 2;
      }, 'steady with two ready replicas', 30_000, 100);
      const from = err.lines.length;
      // Three watch ticks (2 s each): always steady 2/2, and no replica goes through its gate again.
      const phases = new Set<string>();
      const until = Date.now() + 6500;
      while (Date.now() < until) {
        const v = (await requestStatus<Snapshot>(sock)).services[svc] as { phase: string; ready: number };
        phases.add(`${v.phase} ${v.ready}`);
        await new Promise((r) => setTimeout(r, 150));
      }
      expect([...phases]).toEqual(['steady 2']);
      expect(err.lines.slice(from).filter((l) => / starting \(|rolling/.test(l))).toEqual([]);
    } finally {
      child.kill('SIGTERM');
      await child;
    }
  });

  it('after an automatic rollback, previous is not the failed revision; rollback --dry-run plans and changes nothing', async () => {
    const svc = fx.service('prev');
    const v1 = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--env', 'V=1', ...FAST, '--json']);
    expect(v1.exitCode, String(v1.stderr)).toBe(0);
    const rev1 = JSON.parse(String(v1.stdout)).revision as string;
    const v2 = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--env', 'V=2', ...FAST, '--json']);
    expect(v2.exitCode, String(v2.stderr)).toBe(0);
    const rev2 = JSON.parse(String(v2.stdout)).revision as string;

    // rollback --dry-run: the plan back to v1, nothing touched.
    const before = (await fx.containers(svc)).map((c) => c.Id).sort();
    const dry = await fx.run(['deploy', 'rollback', svc, '--dry-run']);
    expect(dry.exitCode, String(dry.stderr)).toBe(0);
    expect(String(dry.stdout)).toMatch(new RegExp(`plan for ${svc} -> 1 replica\\(s\\) of ${rev1}`));
    expect(String(dry.stdout)).toMatch(/create replica #1/);
    expect(String(dry.stdout)).toMatch(new RegExp(`drain, stop and remove ${svc}-\\S+ \\(${rev2}, old revision\\)`));
    expect((await fx.containers(svc)).map((c) => c.Id).sort()).toEqual(before);

    // v3 fails its gate and is rolled back to v2: previous must not be v3.
    const v3 = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--env', 'V=3', '--health-http', '/missing', '--health-deadline', '2s', '--failure-threshold', '1', ...FAST, '--json']);
    expect(v3.exitCode).toBe(6);
    const failed = JSON.parse(String(v3.stdout)) as { revision: string; previous: string | null; rolledBack: boolean };
    const status = JSON.parse(String((await fx.run(['deploy', 'status', svc, '--json'])).stdout)).services[0] as { revision: string; previous: string | null; failedRevision: string };
    expect(status.revision).toBe(rev2);
    expect(status.failedRevision).not.toBe(rev2);
    expect(status.previous).not.toBe(status.failedRevision);
    expect(failed.previous).not.toBe(status.failedRevision);
    // So `deploy rollback` does not re-deploy what just failed: it says why there is nothing to go back to.
    const rb = await fx.run(['deploy', 'rollback', svc]);
    expect(rb.exitCode).toBe(2);
    expect(String(rb.stderr)).toMatch(/no previous revision to roll back to \(its last rollout, \S+, failed and was rolled back already\)/);
    expect((await fx.containers(svc, false)).map((c) => c.Labels['elastic.revision'])).toEqual([rev2]);
  });

  it('progress follows every step, the summary is printed once, and status lists only this state directory', async () => {
    const svc = fx.service('out');
    const first = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '2', '--port', '80', ...FAST]);
    expect(first.exitCode, String(first.stderr)).toBe(0);
    const r = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '2', '--port', '80', '--env', 'V=2', ...FAST]);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const both = `${String(r.stderr)}\n${String(r.stdout)}`;
    // Each step of the rollout is a progress line (the TTY header shows the same events).
    const steps = String(r.stderr).split('\n').filter((l) => /^deploy: rolling: .*: rolling: \d\/2 new ready/.test(l));
    expect(steps.map((l) => /(\d)\/2 new ready/.exec(l)![1])).toEqual(expect.arrayContaining(['0', '1']));
    expect(String(r.stderr)).toMatch(/^deploy: rolling: .*all 2 new replica\(s\) ready: remove \d old$/m);
    // The "converged" summary once, not once per stream plus once more.
    expect(both.match(/converged: 2 replica\(s\)/g) ?? []).toHaveLength(1);
    expect(String(r.stdout)).toMatch(new RegExp(`^${svc}: steady, 2 replica\\(s\\) of `, 'm'));

    // Another state directory on the same Docker host: not its service.
    const other = mkdtempSync(join(tmpdir(), 'elastic-deploy-other-'));
    try {
      const s = await fx.run(['deploy', 'status', '--json'], { env: { ELASTIC_STATE_DIR: other } });
      expect(s.exitCode, String(s.stderr)).toBe(0);
      expect(JSON.parse(String(s.stdout)).services.map((x: { service: string }) => x.service)).not.toContain(svc);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    const mine = await fx.run(['deploy', 'status', '--json']);
    expect(JSON.parse(String(mine.stdout)).services.map((x: { service: string }) => x.service)).toContain(svc);
  });
});
