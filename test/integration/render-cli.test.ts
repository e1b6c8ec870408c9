import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { elastic } from '../support/cli.js';
import { TestContainers, requireDocker, waitFor } from '../support/docker.js';
import { LocalBackends, httpGet } from '../support/render-backends.js';
import { createClientNamespace } from '../support/netns.js';

// Issue 14 item 4 and issue 13 item 13 (render parts), through the built binary. Ports 22550
// (HAProxy under --watch); 22551-22553 are only printed into configs.
const tc = new TestContainers();
let dir: string;
const envOf = (name: string) => ({ ELASTIC_STATE_DIR: join(dir, name, 'state'), ELASTIC_RUN_DIR: join(dir, name, 'run') });
const svc = (backends: string[]) => ['render', '--service', 'cli', '--bind', '127.0.0.1:22551', ...backends.flatMap((b) => ['--backend', b])];
const exists = (p: string) => access(p).then(() => true, () => false);
let watch: ReturnType<typeof elastic> | null = null;

beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-render-cli-'));
});

afterAll(async () => {
  if (watch) {
    watch.kill('SIGTERM');
    await watch;
  }
  const d = defaultPaths('rgrow', 'haproxy', envOf('grow'));
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop();
  await tc.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe('render one-shot modes', () => {
  it('--dry-run refuses (exit 6) exactly where the real run would', async () => {
    const env = envOf('dry');
    // Backends that answer: a removal of a backend that is gone is intended, never refused
    // (frontends/guardrails.ts), so only live ones can make a refusal.
    const three = ['127.0.0.1:22561', '127.0.0.1:22562', '127.0.0.1:22563'];
    const live = await Promise.all(three.map((b) => new Promise<Server>((r) => { const srv = createServer((c) => c.destroy()).listen(Number(b.split(':')[1]), '127.0.0.1', () => r(srv)); })));
    try {
      const applied = await elastic([...svc(three), '--no-apply'], { env });
      expect(applied.exitCode, String(applied.stderr)).toBe(0);
      // 2 of 3 live backends gone from discovery (67% > --max-change 50); 1 of 3 gone below --min-backends 3.
      for (const args of [svc(three.slice(0, 1)), [...svc(three.slice(0, 2)), '--min-backends', '3']]) {
        const real = await elastic([...args, '--no-apply'], { env });
        const dry = await elastic([...args, '--dry-run'], { env });
        expect(real.exitCode, String(real.stderr)).toBe(6);
        expect(dry.exitCode, String(dry.stderr)).toBe(6);
        expect(dry.stderr).toMatch(/dry run: would be refused: cli: /);
      }
    } finally {
      for (const srv of live) srv.close();
    }
  });

  it('--dry-run and --check create no state or run directory', async () => {
    const env = envOf('ro');
    for (const mode of ['--dry-run', '--check']) {
      const r = await elastic([...svc(['127.0.0.1:22551']), mode], { env });
      expect(r.exitCode, String(r.stderr)).toBe(0);
    }
    expect(await exists(join(dir, 'ro'))).toBe(false);
  });

  it('--no-apply writes the validated file with no proxy running', async () => {
    const env = envOf('noapply');
    const out = join(dir, 'noapply.cfg');
    const r = await elastic([...svc(['127.0.0.1:22551']), '--output', out, '--no-apply'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(r.stdout).toMatch(/written, not applied \(--no-apply\)/);
    expect(await readFile(out, 'utf8')).toMatch(/server s1 127\.0\.0\.1:22551/);
  });

  it('--proxy varnish --start is a usage error, not silently ignored', async () => {
    const r = await elastic([...svc(['127.0.0.1:22551']), '--proxy', 'varnish', '--start'], { env: envOf('vstart') });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/render does not start varnishd/);
  });

  it('a bad weight label is served with weight 1 and warned about once', async () => {
    const c = await tc.run({ name: `rweight-${tc.runId}`, labels: { 'elastic.weight': 'heavy' } });
    const r = await elastic(['render', '--service', 'w', '--bind', '127.0.0.1:22552', '--name', `rweight-${tc.runId}`, '--port', '80', '--dry-run'], { env: envOf('weight') });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stderr).match(/label elastic\.weight="heavy" is not a weight 0-256; using 1/g)).toHaveLength(1);
    await c.remove({ force: true });
  });
});

describe('render --watch with HAProxy', () => {
  it('a reload that grows the slots is not reported as a dead HAProxy', async () => {
    const env = envOf('grow');
    await tc.run({ name: `rgrow-${tc.runId}-1` });
    let stderr = '';
    watch = elastic(['render', '--service', 'rgrow', '--bind', '127.0.0.1:22550', '--name', `rgrow-${tc.runId}-*`, '--port', '80', '--slots', '1', '--start', '--watch', '--wait', '50ms:300ms'], { env, timeout: 120_000 });
    watch.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitFor(async () => (await httpGet(22550).catch(() => '')) !== '', 'HAProxy serving', 30_000, 200);
    for (let i = 2; i <= 3; i++) {
      const c = await tc.run({ name: `rgrow-${tc.runId}-${i}` });
      await waitFor(async () => {
        for (let k = 0; k < 8; k++) if ((await httpGet(22550).catch(() => '')) === c.id.slice(0, 12)) return true;
        return false;
      }, `container ${i} served`, 20_000, 100);
    }
    await new Promise((r) => setTimeout(r, 2500)); // a few monitor ticks after the last reload
    expect(stderr).toMatch(/applied: reload/);
    expect(stderr).not.toMatch(/not running; restart/);
  }, 120_000);
});

describe('render with HAProxy: a vanished backend', () => {
  it('costs a request about 1 s (one short connect, then another server), not 3 s or more', async () => {
    // A host this test makes (a network namespace) that drops every packet: like a removed
    // container, it answers nothing.
    const ns = await createClientNamespace({ name: 'rndr-gone', prefix: '198.19.22', index: 0 });
    const ip = ns.clientAddress;
    const drop = await ns.exec(['nft', 'add table inet rgone; add chain inet rgone in { type filter hook input priority 0; policy drop; }']);
    expect(drop.exitCode, drop.stderr).toBe(0);
    const live = new LocalBackends();
    await live.start([22561]);
    const env = envOf('vanished');
    try {
      const r = await elastic(['render', '--service', 'rgone', '--bind', '127.0.0.1:22560', '--backend', '127.0.0.1:22561', '--backend', `${ip}:80`, '--lb-check', 'none', '--start'], { env });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const times: number[] = [];
      for (let i = 0; i < 6; i++) {
        const t0 = Date.now();
        expect(await httpGet(22560, '/id', 10_000)).toBe('b22561');
        times.push(Date.now() - t0);
      }
      expect(Math.max(...times), JSON.stringify(times)).toBeGreaterThan(800); // the dead one was tried
      expect(Math.max(...times), JSON.stringify(times)).toBeLessThan(2000);
    } finally {
      const d = defaultPaths('rgone', 'haproxy', env);
      await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop();
      await live.stop();
      await ns.cleanup();
    }
  }, 60_000);
});

describe('render stop', () => {
  it('stops the nginx that render --start started (by our pid file), and says so in --help', async () => {
    const env = envOf('stop');
    const started = await elastic(['render', '--proxy', 'nginx', '--service', 'rstop', '--bind', '127.0.0.1:22557', '--backend', '127.0.0.1:22558', '--start'], { env });
    expect(started.exitCode, String(started.stderr)).toBe(0);
    const pid = Number((await readFile(defaultPaths('rstop', 'nginx', env).pidFile, 'utf8')).trim());
    expect(pidAlive(pid)).toBe(true);
    try {
      const r = await elastic(['render', 'stop', '--service', 'rstop', '--proxy', 'nginx', '--timeout', '10'], { env });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`nginx \\(pid ${pid}\\): stopped`));
      expect(pidAlive(pid)).toBe(false);
      expect((await elastic(['render', 'stop', '--service', 'rstop', '--proxy', 'nginx'], { env })).stdout).toMatch(/nginx: not running/);
      expect((await elastic(['render', '--help'])).stdout).toMatch(/render stop/);
    } finally {
      if (pidAlive(pid)) process.kill(pid, 'SIGQUIT');
    }
  }, 60_000);
});
