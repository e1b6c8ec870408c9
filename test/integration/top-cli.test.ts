import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { StatusServer } from '../../src/engine/runtime/status.js';
import { BIN, elastic } from '../support/cli.js';
import { LineReader } from '../support/lines.js';
import { FIXTURE_KINDS, mapImageContent, type FixtureKind } from '../fixtures/top/content.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * `elastic top` without a terminal, through the built binary, against real status sockets served
 * by this test with content shaped like the real kinds (counters grow at known rates).
 */
let runDir: string;
let stateDir: string;
const servers: StatusServer[] = [];
const t0 = Date.now();

function serve(kind: FixtureKind, name: string, backends = 3): StatusServer {
  const content = (o: { backends: number; t: number }) => (kind === 'map-image' ? mapImageContent(o, name) : FIXTURE_KINDS[kind](o));
  const s = new StatusServer({ kind, name, dir: runDir, services: () => content({ backends, t: (Date.now() - t0) / 1000 }) });
  servers.push(s);
  return s;
}

const env = () => ({ ELASTIC_RUN_DIR: runDir, ELASTIC_STATE_DIR: stateDir });

beforeAll(async () => {
  runDir = await mkdtemp(join(tmpdir(), 'elastic-top-run-'));
  stateDir = ownedStateDir('elastic-top-state-');
  for (const [kind, name] of [['map-image', 'tcp-18720'], ['render', 'top18721'], ['edge', '18722'], ['node', 'api-1']] as const) {
    const s = serve(kind, name);
    await s.listen();
    s.event('added', `${kind} fixture up`, kind === 'edge' || kind === 'node' ? 'api' : 'web');
  }
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(runDir, { recursive: true, force: true });
  await rm(stateDir, { recursive: true, force: true });
});

describe('elastic top (not a terminal)', () => {
  it('prints one snapshot as tables, with rates from two samples', async () => {
    const r = await elastic(['top', '--interval', '0.5', '--no-docker'], { env: env() });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const out = String(r.stdout);
    expect(out).toMatch(/^SOURCE\s+KIND\s+PID\s+STATUS$/m);
    for (const id of ['map-image.tcp-18720', 'render.top18721', 'edge.18722', 'node.api-1']) expect(out).toMatch(new RegExp(`^${id.replace('.', '\\.')}\\s+\\S+\\s+${process.pid}\\s+live$`, 'm'));
    expect(out).toMatch(/^SERVICE\s+KIND\s+SOURCE\s+BACKENDS\s+HEALTHY\s+RATE\/S/m);
    // map-image: 10 + 20 + 30 packets/s; render: 1 + 2 + 3 hits/s; edge: 50 served/s
    const line = (re: RegExp) => out.split('\n').find((l) => re.test(l)) ?? '';
    expect(line(/^tcp-18720\s+map-image/)).toMatch(/^tcp-18720\s+map-image\s+map-image\.tcp-18720\s+3\s+\d\s+(5\d|6\d|7\d)(\.\d)?\s+pkt\/s/);
    expect(line(/^api\s+edge/)).toMatch(/^api\s+edge\s+edge\.18722\s+1\s+\d\s+\S+\s+req\/s\s+-\s+7\s+3\s+16\s+250ms$/);
    expect(line(/^198\.18\.1\.2:80\s+tcp-18720/)).toMatch(/kernel\s+map-image\.tcp-18720\s+unhealthy\s+running\s+\S+\s+\S+/);
    expect(out).toMatch(/^TIME\s+TYPE\s+SOURCE\s+MESSAGE$/m);
    expect(out).toMatch(/added\s+render\.top18721\s+web: render fixture up/);
  });

  it('--json: one snapshot in the documented shape', async () => {
    const r = await elastic(['top', '--json', '--interval', '0.3', '--no-docker'], { env: env() });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const j = JSON.parse(String(r.stdout));
    expect(j.v).toBe(1);
    expect(j.sources.map((s: { id: string }) => s.id).sort()).toEqual(['edge.18722', 'map-image.tcp-18720', 'node.api-1', 'render.top18721']);
    const svc = j.services.find((s: { sourceId: string }) => s.sourceId === 'map-image.tcp-18720');
    expect(svc).toMatchObject({ service: 'tcp-18720', kind: 'map-image', role: 'mapping', backends: 3, rateUnit: 'pkt/s' });
    expect(svc.rate).toBeGreaterThan(20);
    const b = j.backends.find((x: { sourceId: string; endpoint: string }) => x.sourceId === 'render.top18721' && x.endpoint === '198.18.1.1:80');
    expect(b).toMatchObject({ service: 'web', health: 'healthy', sessions: 0, queued: 2, origin: 'proxy' });
  });

  it('--json --watch streams NDJSON; sockets that appear and vanish are followed', async () => {
    const child = execa(process.execPath, [BIN, 'top', '--json', '--watch', '--interval', '0.2', '--no-docker'], { env: { ...env(), CI: 'true' }, reject: false, stdin: 'ignore' });
    const lines = new LineReader(child.stdout!);
    try {
      type Snap = { v: number; sources: Array<{ id: string; status: string }>; backends: Array<{ sourceId: string; pktRate: number | null }> };
      const first = await lines.json<Snap>((o) => o.sources.length === 4 && o.backends.some((b) => b.pktRate !== null), 'a snapshot with rates');
      expect(first.v).toBe(1);
      const late = serve('deploy', 'shop');
      await late.listen();
      const seen = lines.lines.length;
      await lines.json<Snap>((o) => o.sources.some((s) => s.id === 'deploy.shop' && s.status === 'live'), 'the new deploy socket', 10_000, seen);
      await late.close();
      servers.splice(servers.indexOf(late), 1);
      const gone = lines.lines.length;
      await lines.json<Snap>((o) => !o.sources.some((s) => s.id === 'deploy.shop'), 'the deploy socket forgotten', 10_000, gone);
      // Three states, each its own line at the least (a first snapshot can already carry rates).
      expect(lines.lines.length).toBeGreaterThanOrEqual(3);
    } finally {
      child.kill('SIGTERM');
      await child;
    }
    expect(child.exitCode ?? 0).toBe(0);
  });

  it('nothing running and --no-docker: says how to start', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'elastic-top-empty-'));
    try {
      const r = await elastic(['top', '--once', '--no-docker'], { env: { ELASTIC_RUN_DIR: empty, ELASTIC_STATE_DIR: stateDir } });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(String(r.stdout)).toMatch(/^note: nothing configured: start e\.g\. "elastic map-image 80 IMAGE 80 --watch"/);
      expect(String(r.stdout)).toContain('no sources');
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('a bad --interval is a usage error', async () => {
    const r = await elastic(['top', '--interval', 'soon'], { env: env() });
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(/^error: invalid --interval "soon"\. try: give seconds/);
  });
});
