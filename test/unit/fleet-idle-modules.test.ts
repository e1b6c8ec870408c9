import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * A fleet daemon's idle memory (docs/BENCHMARKS.md, fleet idle cost): dockerode and the ssh2 it
 * pulls in (~15 MB resident) are loaded only when a Docker client is made, and ssh2 only for an
 * ssh:// Docker host. Checked in a fresh node on the built modules (the test runner's own
 * require cache is shared with other tests).
 */
const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const probe = `
import { createRequire } from 'node:module';
const require = createRequire(${JSON.stringify(DIST)});
const loaded = () => ({ dockerode: Object.keys(require.cache).some((k) => k.includes('/node_modules/dockerode/')), ssh2: Object.keys(require.cache).some((k) => k.includes('/node_modules/ssh2/')) });
const out = {};
await import(${JSON.stringify(`${DIST}engine/fleet/host.js`)});
await import(${JSON.stringify(`${DIST}commands/run.js`)});
out.daemon = loaded();
const { createDocker } = await import(${JSON.stringify(`${DIST}engine/discovery/docker/client.js`)});
createDocker('unix:///nonexistent/docker.sock');
out.unix = loaded();
const { docker } = createDocker('ssh://nobody@127.0.0.1:1');
out.sshError = await docker.listContainers().then(() => 'none', (e) => String(e.code ?? e.level ?? e.message));
out.ssh = loaded();
console.log(JSON.stringify(out));
`;

describe('fleet daemon: modules loaded only when needed', () => {
  it('the daemon loads no dockerode; a unix Docker client loads dockerode but not ssh2; an ssh:// one loads ssh2 and connects', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', probe], { timeout: 20_000 });
    const out = JSON.parse(stdout) as Record<string, { dockerode: boolean; ssh2: boolean } | string>;
    expect(out.daemon).toEqual({ dockerode: false, ssh2: false });
    expect(out.unix).toEqual({ dockerode: true, ssh2: false });
    expect(out.ssh).toEqual({ dockerode: true, ssh2: true });
    expect(out.sshError).toMatch(/ECONNREFUSED|client-socket/);
  });
});
