import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerProvider } from '../../src/engine/discovery/docker/provider.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../support/docker.js';

/**
 * The re-list a `die` event causes must not list the dead container. dockerd emits `die` before
 * its container list has the exit, and no later event comes for a container that is not removed:
 * a watcher that trusted that list kept a killed (or crashed) container's address until the 30 s
 * resync (seen as a killed backend left "draining" in map-image --watch on a loaded machine).
 * The list here is made the moment the hint arrives, as the watch loop does when the hint came
 * during a list in flight (no debounce).
 */
describe('docker discovery after a die event (real dockerd)', () => {
  const tc = new TestContainers();
  const image = `elastic-test/mapimg-die-${tc.runId}`;
  beforeAll(async () => {
    await requireDocker();
    await docker.getImage(TEST_IMAGE).tag({ repo: image, tag: '1' });
  });
  afterAll(async () => {
    await tc.cleanup();
    await docker.getImage(`${image}:1`).remove().catch(() => {});
  });

  async function listRightAfterDie(end: (c: Awaited<ReturnType<TestContainers['run']>>) => Promise<unknown>, keepStopping: boolean, cmd?: string[]): Promise<string[]> {
    const provider = new DockerProvider({ selector: { image: `${image}:1`, labels: [], port: 80, includeUnhealthy: true, service: 'web' }, keepStopping });
    const ac = new AbortController();
    try {
      const hints = provider.changes(ac.signal);
      expect((await hints.next()).value).toEqual({ reason: 'connected' });
      const c = await tc.run({ image: `${image}:1`, cmd });
      const id = `docker:${c.id.slice(0, 12)}`;
      for (let i = 0; i < 10 && !(await provider.list()).some((b) => b.id === id); i++) await new Promise((r) => setTimeout(r, 100));
      expect((await provider.list()).map((b) => b.id)).toContain(id);
      const ended = end(c);
      for (;;) {
        const h = await hints.next();
        if (h.done) throw new Error('event stream ended');
        if (h.value.reason === 'event:die') break;
      }
      const listed = (await provider.list()).map((b) => `${b.id} ${b.state}`);
      await ended;
      return listed.filter((l) => l.startsWith(id));
    } finally {
      ac.abort();
    }
  }

  it('a killed container is gone from the list made on its die event (map-image keeps stopping ones as draining)', async () => {
    for (let i = 0; i < 3; i++) expect(await listRightAfterDie((c) => c.kill(), true)).toEqual([]);
  });

  it('a container that exits by itself is gone from the list made on its die event', async () => {
    // The test image's server with `exit` after a moment: no kill event, only die.
    for (let i = 0; i < 2; i++) expect(await listRightAfterDie(async () => {}, false, ['sh', '-c', 'sleep 1.5; exit 3'])).toEqual([]);
  });
});
