import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { docker, requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { DeployFixture, FAST } from '../support/deploy.js';

/**
 * The one guardrail definition in `render --watch` (issue 14 item 2): in front of `deploy`, a
 * scale 5 -> 1 drains 4 replicas (intended removals, not a discovery failure) and render keeps
 * following: the scale back to 3 reaches HAProxy. Port 21020.
 */
const RENDER_PORT = 21020;

describe('render in front of deploy scale 5 -> 1 -> 3', () => {
  const fx = new DeployFixture();
  const image = `elastic-test/rt-${fx.tag}:1`;
  const svc = fx.service('rt');
  let render: ReturnType<DeployFixture['run']> | null = null;
  let stderr = '';

  beforeAll(async () => {
    await requireDocker();
    await fx.setup();
    await docker.getImage(TEST_IMAGE).tag({ repo: `elastic-test/rt-${fx.tag}`, tag: '1' });
  });
  afterAll(async () => {
    await fx.stopRender(render, svc);
    await fx.cleanup();
    await docker.getImage(image).remove({ noprune: true }).catch(() => {});
  });

  it('render keeps following (max-change 50): every replica the deploy keeps is served', async () => {
    onTestFailed(() => console.error(`render stderr:\n${stderr}`));
    const deploy = async (args: string[]) => {
      const r = await fx.run(args, { timeout: 120_000 });
      expect(r.exitCode, String(r.stderr)).toBe(0);
    };
    await deploy(['deploy', image, '--name', svc, '-r', '5', '--port', '80', ...FAST]);
    render = fx.run(['render', '--service', svc, '--bind', `127.0.0.1:${RENDER_PORT}`, '--label', `elastic.service=${svc}`, '--port', '80', '--start', '--watch', '--wait', '50ms:300ms', '--lb-check-interval', '300'], { timeout: 240_000 });
    render.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const ids = async () => new Set((await fx.containers(svc, false)).map((c) => c.Id.slice(0, 12)));
    const served = async (n: number) => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) seen.add(await fetch(`http://127.0.0.1:${RENDER_PORT}/id`, { signal: AbortSignal.timeout(2000), headers: { connection: 'close' } }).then(async (r) => (await r.text()).trim(), () => 'ERR'));
      return seen;
    };
    const follows = async (what: string) => {
      const want = await ids();
      await waitFor(async () => {
        const got = await served(want.size * 3);
        return got.size === want.size && [...want].every((x) => got.has(x));
      }, what, 30_000, 300);
    };
    await follows('5 replicas served');
    await deploy(['deploy', 'scale', svc, '-r', '1']);
    await follows('1 replica served after the scale-down');
    await deploy(['deploy', 'scale', svc, '-r', '3']);
    await follows('3 replicas served after the scale-up');
    expect(stderr).not.toMatch(/refused/);
  });
});
