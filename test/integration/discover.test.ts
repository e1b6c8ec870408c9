import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, OTHER_IMAGE, requireDocker, TEST_IMAGE, TestContainers, waitFor } from '../support/docker.js';
import { elastic } from '../support/cli.js';

/** Acceptance: against the real dockerd, 3 containers of the image and 2 others -> exactly 3. */
describe('elastic discover (real dockerd)', () => {
  const tc = new TestContainers();
  // A tag of our own, so containers of other runs on this host cannot be counted.
  const image = `elastic-test/discover-${tc.runId}:1`;
  const want: string[] = [];

  beforeAll(async () => {
    await requireDocker();
    await docker.getImage(TEST_IMAGE).tag({ repo: `elastic-test/discover-${tc.runId}`, tag: '1' });
    for (let i = 0; i < 3; i++) {
      const c = await tc.run({ image, name: `disc-${tc.runId}-${i}` });
      want.push(`${await tc.ip(c)}:80`);
    }
    // Two others: a different image, and the same image ID under another tag.
    await tc.run({ image: OTHER_IMAGE, name: `disc-${tc.runId}-other` });
    await tc.run({ image: TEST_IMAGE, name: `disc-${tc.runId}-sameid` });
  });
  afterAll(async () => {
    await tc.cleanup();
    await docker.getImage(image).remove().catch(() => {});
  });

  it('--json lists exactly the 3 address:ports', async () => {
    const r = await elastic(['discover', '--image', image, '--port', '80', '--json']);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const out = JSON.parse(String(r.stdout));
    expect(out.v).toBe(1);
    expect(out.backends.map((b: { endpoint: string }) => b.endpoint).sort()).toEqual([...want].sort());
    for (const b of out.backends) {
      expect(b).toMatchObject({ source: 'docker', state: 'running', health: 'none', image, port: 80 });
      expect(b.id).toMatch(/^docker:[0-9a-f]{12}$/);
    }
  });

  it('prints a table by default, and selects by label and name', async () => {
    const r = await elastic(['discover', '--image', image, '--port', '80']);
    expect(r.exitCode).toBe(0);
    const lines = String(r.stdout).trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+SOURCE\s+ADDRESS\s+STATE\s+HEALTH\s+AGE$/);
    expect(lines).toHaveLength(4);

    const byLabel = await elastic(['discover', '--label', `elastic.test=${tc.runId}`, '--name', `disc-${tc.runId}-?`, '--port', '80', '--json']);
    expect(JSON.parse(String(byLabel.stdout)).backends).toHaveLength(3);
  });

  it('an image that matches nothing is an empty result, exit 0, with a note on stderr', async () => {
    const r = await elastic(['discover', '--image', 'elastic-test/none:0', '--json']);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(String(r.stdout)).backends).toEqual([]);
    expect(String(r.stderr)).toMatch(/note: no running backend matches/);
  });

  it('a container without a usable port is skipped in the list and named in the error', async () => {
    const r = await elastic(['discover', '--image', OTHER_IMAGE, '--label', `elastic.test=${tc.runId}`]);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(/exposes no port.*try: pass --port/);
  });
});

describe('discover and health (real dockerd)', () => {
  const tc = new TestContainers();
  const image = `elastic-test/health-${tc.runId}:1`;
  let goodIp = '';
  let badIp = '';
  beforeAll(async () => {
    await requireDocker();
    await docker.getImage(TEST_IMAGE).tag({ repo: `elastic-test/health-${tc.runId}`, tag: '1' });
    const good = await tc.run({ image, healthCmd: ['true'] });
    const bad = await tc.run({ image, healthCmd: ['false'] });
    goodIp = await tc.ip(good);
    badIp = await tc.ip(bad);
    await waitFor(async () => {
      const [g, b] = await Promise.all([good.inspect(), bad.inspect()]);
      return g.State.Health?.Status === 'healthy' && b.State.Health?.Status === 'unhealthy';
    }, 'Docker health checks to settle', 20_000);
  });
  afterAll(async () => {
    await tc.cleanup();
    await docker.getImage(image).remove().catch(() => {});
  });

  it('leaves out containers whose Docker health check is not healthy, unless asked', async () => {
    const r = await elastic(['discover', '--image', image, '--port', '80', '--json']);
    expect(JSON.parse(String(r.stdout)).backends.map((b: { endpoint: string; health: string }) => `${b.endpoint} ${b.health}`)).toEqual([`${goodIp}:80 healthy`]);
    const all = await elastic(['discover', '--image', image, '--port', '80', '--json', '--include-unhealthy']);
    expect(JSON.parse(String(all.stdout)).backends.map((b: { endpoint: string }) => b.endpoint).sort()).toEqual([`${goodIp}:80`, `${badIp}:80`].sort());
  });

  it('--check http probes each backend itself', async () => {
    const ok = await elastic(['discover', '--image', image, '--port', '80', '--check', 'http:/healthz', '--include-unhealthy', '--json']);
    expect(JSON.parse(String(ok.stdout)).backends.map((b: { health: string }) => b.health)).toEqual(['healthy', 'healthy']);
    const wrongPort = await elastic(['discover', '--image', image, '--port', '81', '--check', 'tcp', '--check-timeout', '300', '--json']);
    expect(JSON.parse(String(wrongPort.stdout)).backends).toEqual([]);
  });
});
