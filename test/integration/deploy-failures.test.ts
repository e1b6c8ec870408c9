import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN } from '../support/cli.js';
import { requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { DeployFixture, FAST } from '../support/deploy.js';

/**
 * Deploys that cannot go on leave nothing half-made and say why: a missing network (no Created
 * container, no state file), a deploy killed mid-rollout (status says interrupted, not rolling),
 * Docker unreachable for scale/rm (its own error, state untouched). Real dockerd, built binary.
 */
describe('deploy failures', () => {
  const fx = new DeployFixture();
  beforeAll(async () => {
    await requireDocker();
    await fx.setup();
  });
  afterAll(() => fx.cleanup());

  it('--network that does not exist: one line, exit 2, no container and no state file left', async () => {
    const svc = fx.service('net');
    const r = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--network', `absent-${fx.tag}`]);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr).trim()).toMatch(new RegExp(`^error: Docker network "absent-${fx.tag}" does not exist\\. try: create it first`));
    expect(await fx.containers(svc)).toEqual([]);
    expect(existsSync(join(fx.stateDir, `deploy-${svc}.json`))).toBe(false);
  });

  it('a deploy killed mid-rollout: status says interrupted (nobody is rolling)', async () => {
    const svc = fx.service('kill');
    const child = execa(process.execPath, [BIN, 'deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--health-http', '/missing', '--health-deadline', '60s', ...FAST], {
      env: { ...fx.env, CI: 'true' },
      reject: false,
      stdin: 'ignore',
    });
    const file = join(fx.stateDir, `deploy-${svc}.json`);
    await waitFor(() => existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { phase: string }).phase === 'rolling', 'the rollout under way', 30_000, 100);
    await waitFor(async () => (await fx.containers(svc, false)).length === 1, 'its replica running', 20_000, 100);
    child.kill('SIGKILL');
    await child;
    const s = await fx.run(['deploy', 'status', svc, '--json']);
    expect(s.exitCode, String(s.stderr)).toBe(0);
    const view = JSON.parse(String(s.stdout)).services[0] as { phase: string; message: string };
    expect(view.phase).toBe('interrupted');
    expect(view.message).toMatch(/is not running any more \(killed\?\)/);
    // The text form says the same.
    expect(String((await fx.run(['deploy', 'status', svc])).stdout)).toMatch(new RegExp(`^${svc}\\s+\\S+\\s+interrupted`, 'm'));
  });

  it('Docker unreachable: scale and rm say so, and write nothing (not "Docker lost in the middle of the rollout")', async () => {
    const svc = fx.service('nod');
    const up = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', ...FAST]);
    expect(up.exitCode, String(up.stderr)).toBe(0);
    const file = join(fx.stateDir, `deploy-${svc}.json`);
    const before = readFileSync(file, 'utf8');
    const nowhere = { DOCKER_HOST: `unix://${join(fx.runDir, 'no-dockerd.sock')}` };
    for (const args of [['deploy', 'scale', svc, '-r', '2'], ['deploy', 'rm', svc]]) {
      const r = await fx.run(args, { env: nowhere });
      expect(r.exitCode, String(r.stderr)).toBe(3);
      const lines = String(r.stderr).trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^error: Docker socket not found at unix:\/\/\S+no-dockerd\.sock\. try: is dockerd running/);
      expect(readFileSync(file, 'utf8')).toBe(before);
    }
    expect((await fx.containers(svc, false)).length).toBe(1);
  });
});
