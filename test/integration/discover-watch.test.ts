import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { BIN } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { PrivateDockerd } from '../support/private-dockerd.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listStatusSockets, requestStatus } from '../../src/engine/runtime/status.js';

type Line = { type: string; reason: string; backend: { id: string; name: string; endpoint: string } };

const runDir = mkdtempSync(join(tmpdir(), 'elastic-run-'));
afterAll(() => rmSync(runDir, { recursive: true, force: true }));

function watch(args: string[]): { proc: ResultPromise; out: LineReader; err: LineReader } {
  const proc = execa(process.execPath, [BIN, 'discover', '--watch', '--json', ...args], { reject: false, stdin: 'ignore', env: { CI: 'true', ELASTIC_RUN_DIR: runDir } });
  return { proc, out: new LineReader(proc.stdout!), err: new LineReader(proc.stderr!) };
}

async function stop(proc: ResultPromise): Promise<void> {
  if (proc.exitCode === null && proc.pid) process.kill(proc.pid, 'SIGTERM');
  await proc;
}

describe('discover --watch --json (real dockerd)', () => {
  const tc = new TestContainers();
  const image = `elastic-test/watch-${tc.runId}:1`;
  beforeAll(async () => {
    await requireDocker();
    await docker.getImage(TEST_IMAGE).tag({ repo: `elastic-test/watch-${tc.runId}`, tag: '1' });
  });
  afterAll(async () => {
    await tc.cleanup();
    await docker.getImage(image).remove().catch(() => {});
  });

  it('prints an added line when a matching container starts and a removed line when it stops', async () => {
    const w = watch(['--image', image, '--port', '80']);
    try {
      await w.err.next(() => true, 'nothing yet', 1500).catch(() => {}); // give the stream a moment
      const c = await tc.run({ image });
      const ip = await tc.ip(c);
      const added = await w.out.json<Line>((l) => l.type === 'added', 'an added line');
      expect(added.backend.endpoint).toBe(`${ip}:80`);
      expect(added.reason).toMatch(/^(event:start|initial)$/);
      const from = w.out.lines.length;
      await c.stop({ t: 0 });
      const removed = await w.out.json<Line>((l) => l.type === 'removed', 'a removed line', 15_000, from);
      expect(removed.backend.id).toBe(added.backend.id);
      // The watch answers on its status socket while it runs.
      const mine = (await listStatusSockets(runDir)).find((s) => s.kind === 'discover' && s.name.endsWith(`-${w.proc.pid}`));
      const snap = await requestStatus(mine!.path);
      expect(snap).toMatchObject({ kind: 'discover', pid: w.proc.pid });
      expect(snap.events.map((e) => e.type)).toEqual(expect.arrayContaining(['added', 'removed']));
      // Nothing but JSON on stdout.
      for (const l of w.out.lines) expect(() => JSON.parse(l)).not.toThrow();
    } finally {
      await stop(w.proc);
    }
  });
});

describe('discover --watch survives a dockerd restart', () => {
  const d = new PrivateDockerd();
  beforeAll(async () => {
    await requireDocker();
    await d.start();
    await d.prepare();
  }, 120_000);
  afterAll(() => d.destroy(), 60_000);

  it('reconnects and resyncs after dockerd is stopped and started again', async () => {
    const client = d.client();
    const first = await client.createContainer({ Image: TEST_IMAGE, name: 'before-restart' });
    await first.start();
    const w = watch(['--image', TEST_IMAGE, '--port', '80', '--docker-host', d.host, '--log-json']);
    try {
      await w.out.json<Line>((l) => l.type === 'added' && l.backend.name === 'before-restart', 'the first container');
      await d.kill('SIGTERM');
      await w.err.next((l) => /event stream (lost|ended)/.test(l), 'the watch to notice dockerd is gone');
      await d.start(); // containers of a stopped daemon come back stopped (no restart policy)
      await w.out.json<Line>((l) => l.type === 'removed' && l.backend.name === 'before-restart', 'a resync after reconnect', 30_000);
      await w.err.next((l) => /reconnected/.test(l), 'a reconnect log line', 30_000);
      const from = w.out.lines.length;
      const second = await client.createContainer({ Image: TEST_IMAGE, name: 'after-restart' });
      await second.start();
      await w.out.json<Line>((l) => l.type === 'added' && l.backend.name === 'after-restart', 'events after reconnect', 15_000, from);
    } finally {
      await stop(w.proc);
    }
  }, 120_000);
});
