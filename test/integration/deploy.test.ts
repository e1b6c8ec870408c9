import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Readable } from 'node:stream';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { docker, requireDocker, TEST_IMAGE, waitFor } from '../support/docker.js';
import { DeployFixture, FAST } from '../support/deploy.js';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';

/**
 * `elastic deploy` against the real dockerd, through the built binary: replicas up and
 * discoverable, scale, rm, rolling update order, health-gate rollback, bad input.
 */
interface DockerEvent {
  status?: string;
  Action?: string;
  id: string;
  timeNano: number;
  Actor?: { Attributes?: Record<string, string> };
}

/** Record the container events of one service while `fn` runs. */
async function recordEvents(service: string, fn: () => Promise<void>): Promise<DockerEvent[]> {
  const stream = (await docker.getEvents({ filters: JSON.stringify({ type: ['container'], label: [`elastic.service=${service}`] }) })) as unknown as Readable;
  const events: DockerEvent[] = [];
  let buf = '';
  stream.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) events.push(JSON.parse(line) as DockerEvent);
    }
  });
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 300)); // the last events are on their way
  } finally {
    stream.destroy();
  }
  return events;
}

describe('elastic deploy (real dockerd)', () => {
  const fx = new DeployFixture();

  beforeAll(async () => {
    await requireDocker();
    await fx.setup();
  });
  afterAll(() => fx.cleanup());

  it('3 replicas up and discoverable; scale 3 -> 5 -> 1; rm leaves nothing behind', async () => {
    const svc = fx.service('web');
    const up = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '--replicas', '3', '--port', '80', '--env', 'GREETING=hi there', '--label', 'team=web', '--memory', '64m', '--cpus', '0.5', ...FAST, '--json']);
    expect(up.exitCode, String(up.stderr)).toBe(0);
    const res = JSON.parse(String(up.stdout));
    expect(res).toMatchObject({ v: 1, service: svc, phase: 'steady', desired: 3, created: 3 });
    expect(res.revision).toMatch(/^[0-9a-f]{12}-[0-9a-f]{8}$/);

    const list = await fx.containers(svc);
    expect(list).toHaveLength(3);
    const info = await docker.getContainer(list[0]!.Id).inspect();
    expect(info.Config.Env).toContain('GREETING=hi there');
    expect(info.HostConfig).toMatchObject({ Memory: 64 * 1024 * 1024, NanoCpus: 500_000_000, RestartPolicy: { Name: 'unless-stopped' } });
    for (const c of list) {
      expect(c.Labels).toMatchObject({ 'elastic.managed': 'true', 'elastic.service': svc, 'elastic.revision': res.revision, team: 'web' });
      expect(c.Names[0]).toMatch(new RegExp(`^/${svc}-[0-9a-f]{8}-[0-9a-f]{6}$`));
    }

    const disc = await fx.run(['discover', '--label', `elastic.service=${svc}`, '--json']);
    expect(disc.exitCode, String(disc.stderr)).toBe(0);
    const backends = JSON.parse(String(disc.stdout)).backends as Array<{ service: string; address: string; port: number; name: string }>;
    expect(backends).toHaveLength(3);
    for (const b of backends) {
      expect(b).toMatchObject({ service: svc, port: 80 });
      const id = await (await fetch(`http://${b.address}/id`, { signal: AbortSignal.timeout(3000) })).text();
      expect(id.trim()).toMatch(/^[0-9a-f]{12}$/);
    }

    const five = await fx.run(['deploy', 'scale', svc, '--replicas', '5', '--json']);
    expect(five.exitCode, String(five.stderr)).toBe(0);
    expect((await fx.containers(svc, false)).length).toBe(5);
    const one = await fx.run(['deploy', 'scale', svc, '--replicas', '1', '--json']);
    expect(one.exitCode, String(one.stderr)).toBe(0);
    expect(await fx.containers(svc)).toHaveLength(1);

    const status = await fx.run(['deploy', 'status', svc, '--json']);
    expect(JSON.parse(String(status.stdout)).services[0]).toMatchObject({ service: svc, desired: 1, ready: 1, phase: 'steady', revision: res.revision });

    // Scaled to 0, no container is left, but `deploy status` (all services) still lists it.
    const zero = await fx.run(['deploy', 'scale', svc, '--replicas', '0', '--json']);
    expect(zero.exitCode, String(zero.stderr)).toBe(0);
    expect(await fx.containers(svc, false)).toHaveLength(0);
    const all = await fx.run(['deploy', 'status', '--json']);
    expect(all.exitCode, String(all.stderr)).toBe(0);
    expect((JSON.parse(String(all.stdout)).services as Array<{ service: string }>).find((v) => v.service === svc)).toMatchObject({ service: svc, desired: 0, ready: 0 });

    const rm = await fx.run(['deploy', 'rm', svc]);
    expect(rm.exitCode, String(rm.stderr)).toBe(0);
    expect(await fx.containers(svc)).toHaveLength(0);
    expect(existsSync(join(fx.stateDir, `deploy-${svc}.json`))).toBe(false);
  });

  it('rolling update: a new replica is healthy before an old one goes; surge 1 / unavailable 0 held', async () => {
    const svc = fx.service('roll');
    const v1 = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '3', '--port', '80', ...FAST]);
    expect(v1.exitCode, String(v1.stderr)).toBe(0);
    const oldIds = new Set((await fx.containers(svc)).map((c) => c.Id));

    const dry = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '3', '--port', '80', '--env', 'V=2', '--dry-run', '--json']);
    expect(JSON.parse(String(dry.stdout)).plan.map((s: { create: number[]; remove: unknown[] }) => `${s.create.length}+${s.remove.length}-`)).toEqual(['1+0-', '0+1-', '1+0-', '0+1-', '1+0-', '0+1-']);
    expect((await fx.containers(svc)).map((c) => c.Id).sort()).toEqual([...oldIds].sort()); // dry run changed nothing

    let out = '';
    const events = await recordEvents(svc, async () => {
      const v2 = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '3', '--port', '80', '--env', 'V=2', '--max-surge', '1', '--max-unavailable', '0', ...FAST]);
      out = String(v2.stderr);
      expect(v2.exitCode, out).toBe(0);
    });
    const after = await fx.containers(svc);
    expect(after).toHaveLength(3);
    expect(after.some((c) => oldIds.has(c.Id))).toBe(false);

    // Replay the events: running count within [3, 4]; the k-th old stop comes >= min-healthy after the k-th new start.
    const running = new Set(oldIds);
    const newStarts: number[] = [];
    let oldStops = 0;
    const killed = new Set<string>();
    for (const e of events) {
      const action = e.Action ?? e.status ?? '';
      if (action === 'start') {
        running.add(e.id);
        if (!oldIds.has(e.id)) newStarts.push(e.timeNano / 1e6);
      } else if (action === 'kill' && oldIds.has(e.id) && !killed.has(e.id)) {
        killed.add(e.id); // SIGTERM, then SIGKILL: one stop
        oldStops++;
        expect(newStarts.length, 'an old replica stopped before a new one started').toBeGreaterThanOrEqual(oldStops);
        expect(e.timeNano / 1e6 - newStarts[oldStops - 1]!).toBeGreaterThanOrEqual(300);
        running.delete(e.id);
      } else if (action === 'die') running.delete(e.id);
      expect(running.size).toBeLessThanOrEqual(4);
      expect(running.size).toBeGreaterThanOrEqual(3);
    }
    expect(oldStops).toBe(3);
    expect(out).toMatch(/draining/);
  });

  it('a new revision failing its health gate is rolled back; the old replicas serve all along and are never stopped', async () => {
    const svc = fx.service('bad');
    const v1 = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '2', '--port', '80', ...FAST]);
    expect(v1.exitCode, String(v1.stderr)).toBe(0);
    const old = await fx.containers(svc);
    const oldIds = new Set(old.map((c) => c.Id));
    const started = new Map(await Promise.all(old.map(async (c) => [c.Id, (await docker.getContainer(c.Id).inspect()).State.StartedAt] as const)));
    const addrs = old.map((c) => Object.values(c.NetworkSettings.Networks)[0]!.IPAddress);

    // Keep asking the old replicas while the bad revision rolls out and back (bounded).
    let failures = 0;
    let requests = 0;
    let polling = true;
    const poller = (async () => {
      while (polling && requests < 5000) {
        for (const a of addrs) {
          requests++;
          await fetch(`http://${a}/id`, { signal: AbortSignal.timeout(2000) }).then((r) => r.text(), () => failures++);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    let stdout = '';
    const events = await recordEvents(svc, async () => {
      const bad = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '2', '--port', '80', '--env', 'V=bad', '--health-cmd', 'false', '--health-interval', '200ms', '--health-retries', '1', '--failure-threshold', '2', ...FAST]);
      stdout = String(bad.stdout);
      expect(bad.exitCode, String(bad.stderr)).toBe(6);
    });
    polling = false;
    await poller;
    expect(stdout).toMatch(/rolled back/);
    expect(failures).toBe(0);
    expect(requests).toBeGreaterThan(10);

    const now = await fx.containers(svc);
    expect(new Set(now.map((c) => c.Id))).toEqual(oldIds);
    for (const c of now) expect((await docker.getContainer(c.Id).inspect()).State.StartedAt).toBe(started.get(c.Id));
    const touched = events.filter((e) => oldIds.has(e.id) && ['kill', 'stop', 'die', 'destroy'].includes(e.Action ?? e.status ?? ''));
    expect(touched).toEqual([]);
    expect(events.filter((e) => (e.Action ?? e.status) === 'start').length).toBeGreaterThanOrEqual(2); // the bad ones did start

    const status = JSON.parse(String((await fx.run(['deploy', 'status', svc, '--json'])).stdout)).services[0];
    expect(status).toMatchObject({ phase: 'rolled back', ready: 2, desired: 2 });
    // previous is not the failed revision (deploy rollback must not re-deploy it): nothing to go back to.
    expect(status.failedRevision).toMatch(/^[0-9a-f]{12}-[0-9a-f]{8}$/);
    expect(status.previous).toBeNull();
  });

  it('a first deploy whose replicas miss the health deadline fails clearly and leaves nothing', async () => {
    const svc = fx.service('late');
    const r = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--health-http', '/missing', '--health-deadline', '1s', '--failure-threshold', '1', ...FAST]);
    expect(r.exitCode).toBe(6);
    expect(String(r.stderr)).toMatch(/error: revision .* failed its health gate .*health deadline passed/);
    expect(String(r.stderr)).toMatch(/try: .*--health-deadline/);
    expect(await fx.containers(svc)).toHaveLength(0);
  });

  it('--watch: serves its status socket, takes scale requests (deploy scale, top) and replaces a crashed replica', async () => {
    const svc = fx.service('watch');
    const child = fx.run(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', '--watch', ...FAST], { timeout: 120_000 });
    try {
      await waitFor(async () => (await fx.containers(svc, false)).length === 1, 'the first replica', 20_000, 100);
      const sock = join(fx.runDir, `deploy.${svc}.sock`);
      await waitFor(() => existsSync(sock), 'the status socket', 10_000, 50);
      const snap = await waitFor(async (): Promise<Snapshot | undefined> => {
        const x = await requestStatus<Snapshot>(sock);
        return (x.services[svc] as { phase?: string })?.phase === 'steady' ? x : undefined;
      }, 'the deploy steady', 15_000, 100) as Snapshot;
      expect(snap.kind).toBe('deploy');
      expect(snap.services[svc]).toMatchObject({ service: svc, desired: 1, phase: 'steady' });

      const scaled = await fx.run(['deploy', 'scale', svc, '--replicas', '2']);
      expect(scaled.exitCode, String(scaled.stderr)).toBe(0);
      expect(String(scaled.stdout)).toMatch(/sent to the running deploy/);
      await waitFor(async () => (await fx.containers(svc, false)).length === 2, 'two replicas', 20_000, 100);
      // top's action: {"op":"action","action":"scale","args":{service, replicas}}
      expect(await requestStatus(sock, { op: 'action', action: 'scale', args: { service: svc, replicas: 3 } })).toMatchObject({ ok: true, replicas: 3 });
      await waitFor(async () => (await fx.containers(svc, false)).length === 3, 'three replicas', 20_000, 100);
      expect(await requestStatus(sock, { op: 'action', action: 'scale', args: { replicas: -1 } })).toMatchObject({ ok: false });

      // A replica removed behind its back is replaced (level-triggered).
      const victim = (await fx.containers(svc, false))[0]!;
      await docker.getContainer(victim.Id).remove({ force: true });
      await waitFor(async () => {
        const list = await fx.containers(svc, false);
        return list.length === 3 && !list.some((c) => c.Id === victim.Id);
      }, 'the replica replaced', 20_000, 100);
      const rm = await fx.run(['deploy', 'rm', svc]);
      expect(rm.exitCode).toBe(6); // refused while the deploy runs
    } finally {
      child.kill('SIGTERM');
      await child;
    }
  });

  it('bad input: image not present, negative replicas, a clashing container elastic does not own', async () => {
    const svc = fx.service('in');
    const missing = await fx.run(['deploy', 'elastic-test/absent:9', '--name', svc]);
    expect(missing.exitCode).toBe(5);
    expect(String(missing.stderr)).toMatch(/image elastic-test\/absent:9 is not on the Docker host.*docker load.*docker import/);

    const neg = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '--replicas', '-2']);
    expect(neg.exitCode).toBe(2);
    expect(String(neg.stderr)).toMatch(/--replicas must be a whole number of 0 or more/);

    const clash = await docker.createContainer({ Image: TEST_IMAGE, name: `deploy-clash-${fx.tag}`, Labels: { 'elastic.service': svc } });
    try {
      const r = await fx.run(['deploy', TEST_IMAGE, '--name', svc, '--port', '80']);
      expect(r.exitCode).toBe(6);
      expect(String(r.stderr)).toMatch(/uses the service name .* was not created by elastic deploy/);
      expect((await clash.inspect()).State.Status).toBe('created'); // untouched
      const named = await fx.run(['deploy', TEST_IMAGE, '--name', `deploy-clash-${fx.tag}`]);
      expect(named.exitCode).toBe(6);
    } finally {
      await clash.remove({ force: true });
    }
    expect(await fx.containers(svc)).toHaveLength(0);
  });
});
