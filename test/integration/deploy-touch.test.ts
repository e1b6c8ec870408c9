import { afterAll, describe, expect, it } from 'vitest';
import { DeployDocker } from '../../src/engine/deploy/docker-ops.js';
import { docker, requireDocker, TestContainers } from '../support/docker.js';

/**
 * A replica that passed its gate is "touched" so discovery re-lists at once (deploy/readiness.ts).
 * Found in the full suite: dockerode sent no body for an empty update, Docker answered 500 "EOF",
 * no `update` event came, and a render or daemon in front served the replica only at its next
 * resync (30 s later; run-deploy timed out).
 */
const tc = new TestContainers();
afterAll(() => tc.cleanup());

describe('deploy touch', () => {
  it('succeeds, changes nothing, and Docker emits an update event for the container', async () => {
    await requireDocker();
    const c = await tc.run();
    const before = await c.inspect();
    const since = Math.floor(Date.now() / 1000) - 1;
    await new DeployDocker().touch(c.id);
    const stream = await docker.getEvents({ since, until: Math.floor(Date.now() / 1000) + 1, filters: JSON.stringify({ event: ['update'], container: [c.id] }) });
    let text = '';
    for await (const chunk of stream as AsyncIterable<Buffer>) text += chunk.toString();
    expect(text).toContain('"Action":"update"');
    const after = await c.inspect();
    expect(after.HostConfig.CpuShares).toBe(before.HostConfig.CpuShares);
    expect(after.HostConfig.NanoCpus).toBe(before.HostConfig.NanoCpus);
  });
});
