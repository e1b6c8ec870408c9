import { chmod, mkdir, mkdtemp, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainEverywhere } from '../../src/engine/deploy/drain.js';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { HaproxyRuntime, isMaint } from '../../src/engine/frontends/haproxy/runtime.js';
import { defaultPaths } from '../../src/engine/render.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { elastic } from '../support/cli.js';
import { TestContainers, requireDocker, waitFor } from '../support/docker.js';
import { httpGet } from '../support/render-backends.js';

// A drain that lands while a watch pass is applying a membership change (a new replica that grows
// the slot table: a reload). The drain used to write to HAProxy beside the pass: the pass had
// planned the backend in rotation, its reload put it back after the drain had answered "drained"
// (deploy then stops that container: failed requests), or its verify saw a `maint` it did not
// plan. Now the drain is desired state applied by the same runner. To land the drain inside the
// pass every time, `haproxy -c` (the pass's validation) is slowed by a wrapper in PATH that marks
// when it starts; HAProxy itself is the real one. Real containers, bounded load. Port 27800.
const FRONT = 27800;
const NAME = 'rdser';
const tc = new TestContainers();
let dir: string;
let env: NodeJS.ProcessEnv;
let watch: ReturnType<typeof elastic> | null = null;

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-drain-serial-'));
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'bin'));
  const wrapper = join(dir, 'bin', 'haproxy');
  await writeFile(wrapper, `#!/bin/sh\nfor a in "$@"; do if [ "$a" = "-c" ]; then touch '${join(dir, 'validating')}'; sleep 1.5; break; fi; done\nexec /usr/sbin/haproxy "$@"\n`);
  await chmod(wrapper, 0o755);
  env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run'), PATH: `${join(dir, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}` };
});

afterAll(async () => {
  if (watch) {
    watch.kill('SIGTERM');
    await watch.catch(() => {});
  }
  const d = defaultPaths(NAME, 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/** Bounded load (4 sequential clients, at most 60 s and 20000 requests): every answer with its time. */
function load(stop: AbortSignal) {
  const answers: Array<{ t: number; body: string }> = [];
  const failures: string[] = [];
  const client = async () => {
    const end = Date.now() + 60_000;
    while (!stop.aborted && Date.now() < end && answers.length + failures.length < 20_000) {
      try {
        answers.push({ body: await httpGet(FRONT, '/id', 3000), t: Date.now() });
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const done = Promise.all([client(), client(), client(), client()]);
  return { answers, failures, done };
}

describe('render (HAProxy): a drain and a concurrent pass are applied one at a time', () => {
  it('a drain during a reload pass stays drained, nothing is refused, no request fails', async () => {
    const c1 = await tc.run({ name: `${NAME}-${tc.runId}-1` });
    await tc.run({ name: `${NAME}-${tc.runId}-2` });
    const h1 = c1.id.slice(0, 12);
    // --wait 2s: passes at least 2 s apart, so a pass that undid the drain would leave it undone for seconds.
    watch = elastic(['render', '--service', NAME, '--bind', `127.0.0.1:${FRONT}`, '--name', `${NAME}-${tc.runId}-*`, '--port', '80', '--slots', '2', '--start', '--watch', '--wait', '2s:4s'], { env, timeout: 180_000 });
    await waitFor(async () => (await httpGet(FRONT).catch(() => '')) === h1, 'the first container served', 60_000, 200);
    const sock = join(env.ELASTIC_RUN_DIR!, `render.${NAME}.sock`);
    const stopLoad = new AbortController();
    const traffic = load(stopLoad.signal);
    try {
      const from = new Date().toISOString(); // the first start reports "not running" once
      // A third replica: 2 slots grow to 4, a reload pass. The drain lands while it validates.
      await unlink(join(dir, 'validating')).catch(() => {});
      await tc.run({ name: `${NAME}-${tc.runId}-3` });
      await waitFor(() => stat(join(dir, 'validating')).then(() => true, () => false), 'the reload pass validating', 30_000, 20);
      const outcomes = await drainEverywhere({ service: NAME, address: await tc.ip(c1), port: 80 }, 30_000, { runDir: env.ELASTIC_RUN_DIR });
      const answeredAt = Date.now();
      expect(outcomes).toEqual([expect.objectContaining({ socket: `render.${NAME}`, outcome: 'drained' })]);
      // Passes after the drain (the reload in flight, the resync) must keep it out.
      await new Promise((r) => setTimeout(r, 6000));
      stopLoad.abort();
      await traffic.done;
      expect(traffic.failures).toEqual([]);
      expect(traffic.answers.filter((a) => a.t > answeredAt).length).toBeGreaterThan(50);
      expect(traffic.answers.filter((a) => a.t > answeredAt && a.body === h1)).toEqual([]);
      const snap = await requestStatus<Snapshot>(sock);
      expect(snap.events.filter((e) => e.time >= from && (e.type === 'refused' || e.type === 'error'))).toEqual([]);
      // The drained server is out (maint) in the running HAProxy, as the applied slots say.
      const state = await new HaproxyRuntime({ socket: defaultPaths(NAME, 'haproxy', env).statsSocket }).serversState(`be_${NAME}`);
      const ip1 = await tc.ip(c1);
      expect(state.filter((s) => s.address === ip1 && !isMaint(s))).toEqual([]);
    } finally {
      stopLoad.abort();
      await traffic.done;
    }
  }, 180_000);
});
