import type Docker from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { requestStatus } from '../../src/engine/runtime/status.js';
import { TestContainers, docker, requireDocker, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { removeNetwork, serves } from '../support/label-routes.js';
import { RenderRuns } from '../support/render-runs.js';

// `render --routes-from-labels --watch` serves the status socket of render --watch (kind render,
// docs/render.md "Status socket"): before, a label render had none. A real container on our own
// network 198.18.85.0/24, real HAProxy. Port: 27650.
const PORT = 27650;
const INSTANCE = 'lbstatus';
const tc = new TestContainers();
const NET = `elastic-fds-${process.pid}`;
let network: Docker.Network | null = null;
const runs = new RenderRuns();

beforeAll(async () => {
  await requireDocker();
  await runs.init('el-lbstatus-');
  network = await docker.createNetwork({ Name: NET, Driver: 'bridge', IPAM: { Config: [{ Subnet: '198.18.85.0/24' }] }, Labels: { 'elastic.test': tc.runId } });
});

afterAll(async () => {
  await runs.cleanup();
  await tc.cleanup();
  if (network) await removeNetwork(network);
});

it('render --routes-from-labels --watch answers on its status socket with the label services and events', async () => {
  const w = runs.start(INSTANCE, 'haproxy', ['--routes-from-labels', '--bind', `127.0.0.1:${PORT}`, '--network', NET, '--label', `elastic.test=${tc.runId}`, '--start', '--watch', '--wait', '50ms:200ms', '--json'], 120_000);
  const out = new LineReader(w.stdout!);
  await out.json<{ action: string }>((r) => r.action === 'start', 'haproxy started', 30_000);
  const sock = runs.statusSocket(INSTANCE);
  const empty = await requestStatus(sock);
  expect(empty.kind).toBe('render');
  expect(empty.name).toBe(INSTANCE);
  expect(empty.config).toMatchObject({ proxy: 'haproxy', routesFromLabels: true });

  const c = await tc.run({ network: NET, labels: { 'elastic.http.host': 's.example.com' }, cmd: ['sh', '-c', 'hostname > /www/id && exec httpd -f -p 80 -h /www'] });
  const host = (await c.inspect()).Config.Hostname;
  await serves(PORT, 's.example.com', '/id', host, 's.example.com served by its container');
  let last: unknown = null;
  await waitFor(async () => {
    const snap = await requestStatus(sock);
    last = snap;
    const svc = Object.entries(snap.services).find(([k]) => k.startsWith('s.example.com'))?.[1] as { backends?: number } | undefined;
    return svc?.backends === 1 && snap.events.some((e) => e.type === 'reload' || e.type === 'start');
  }, 'the label service with its backend in the status snapshot, and a pass event', 15_000, 100).catch((e: Error) => {
    throw new Error(`${e.message}; last snapshot: ${JSON.stringify(last)}`);
  });
});
