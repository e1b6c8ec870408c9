import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildAutoscale, buildSpec } from '../../src/engine/deploy/options.js';
import { containerName, resolveBudget, revisionOf, specHash } from '../../src/engine/deploy/spec.js';
import { readEdge, readRender } from '../../src/engine/deploy/metrics.js';
import type { Snapshot } from '../../src/engine/runtime/status.js';
import { ExitCode, UserError } from '../../src/engine/errors.js';

const base = { image: 'elastic-test/web:1', name: 'dplweb', port: '80' };

describe('deploy spec', () => {
  it('revision = image id 12 hex + spec hash 8 hex; replicas and rollout pacing do not change it', () => {
    const a = buildSpec({ ...base, replicas: 3 });
    const b = buildSpec({ ...base, replicas: 5, 'max-surge': '2', 'min-healthy': '10s' });
    const id = `sha256:${'ab'.repeat(32)}`;
    expect(revisionOf(id, a.container)).toMatch(/^abababababab-[0-9a-f]{8}$/);
    expect(revisionOf(id, a.container)).toBe(revisionOf(id, b.container));
    expect(specHash(buildSpec({ ...base, env: ['A=1'] }).container)).not.toBe(specHash(a.container));
    expect(specHash(buildSpec({ ...base, cmd: 'sleep 1' }).container)).not.toBe(specHash(a.container));
  });

  it('hash is independent of label order', () => {
    const x = buildSpec({ ...base, label: ['a=1', 'b=2'] });
    const y = buildSpec({ ...base, label: ['b=2', 'a=1'] });
    expect(specHash(x.container)).toBe(specHash(y.container));
  });

  it('container names are <service>-<hash>-<random>', () => {
    expect(containerName('dplweb', 'abababababab-12345678')).toMatch(/^dplweb-12345678-[0-9a-f]{6}$/);
  });

  it.each([
    [{ replicas: -1 }, /--replicas must be a whole number/],
    [{ name: 'bad name' }, /invalid service name/],
    [{ port: '70000' }, /invalid --port/],
    [{ env: ['NOEQUALS'] }, /invalid --env/],
    [{ label: ['elastic.service=x'] }, /reserved/],
    [{ 'health-cmd': 'true', 'health-http': '/x' }, /choose one health gate/],
    [{ 'health-http': 'no-slash' }, /invalid --health-http/],
    [{ 'max-surge': '150%' }, /invalid --max-surge/],
    [{ 'min-healthy': 'soon' }, /invalid --min-healthy/],
    [{ memory: '1k' }, /below 6m/],
    [{ 'failure-threshold': 0 }, /failure-threshold/],
  ])('refuses %o', (extra, msg) => {
    let err: unknown;
    try {
      buildSpec({ ...base, ...extra });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).exitCode).toBe(ExitCode.usage);
    expect((err as UserError).message).toMatch(msg);
  });

  it('budgets: percentages round surge up and unavailable down; 0/0 becomes surge 1', () => {
    expect(resolveBudget({ maxSurge: '25%', maxUnavailable: '25%' }, 10)).toEqual({ surge: 3, unavailable: 2 });
    expect(resolveBudget({ maxSurge: '0', maxUnavailable: '0' }, 3)).toEqual({ surge: 1, unavailable: 0 });
    expect(resolveBudget({ maxSurge: '0', maxUnavailable: '5' }, 3)).toEqual({ surge: 0, unavailable: 3 });
  });

  it('autoscaling flags: off without --autoscale-max, checked when on', () => {
    expect(buildAutoscale(base)).toBeUndefined();
    expect(() => buildAutoscale({ ...base, 'autoscale-min': 2 })).toThrow(/needs --autoscale-max/);
    expect(() => buildAutoscale({ ...base, 'autoscale-min': 3, 'autoscale-max': 2 })).toThrow(/below --autoscale-min/);
    expect(buildAutoscale({ ...base, 'autoscale-max': 4, 'stable-window': '5s', 'panic-window': '1s' })).toMatchObject({ min: 1, max: 4, metric: 'concurrency', stableWindowMs: 5000, panicWindowMs: 1000 });
    expect(buildSpec({ ...base, 'autoscale-min': 2 }).replicas).toBe(2);
  });

  it('hostile env and labels never break the spec hash or reach a shell (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (v) => {
        try {
          const s = buildSpec({ ...base, env: [`X=${v}`], label: [`k=${v}`] });
          expect(specHash(s.container)).toMatch(/^[0-9a-f]{8}$/);
          expect(s.container.env[0]).toBe(`X=${v}`);
        } catch (e) {
          expect(e).toBeInstanceOf(UserError); // control characters are refused
        }
      }),
    );
  });
});

describe('load readers (tolerant of the other kinds\' shapes)', () => {
  const snap = (services: Record<string, unknown>): Snapshot => ({ v: 1, kind: 'x', name: 'x', pid: 1, started: '', time: '', config: {}, services, events: [] });
  const eps = new Set(['198.18.0.5:80']);

  it('edge: a route named like the service, or whose nodes serve our replicas', () => {
    expect(readEdge(snap({ dplweb: { queued: 4, active: 6, waitP50Ms: 12 } }), 'dplweb', eps)).toEqual({ concurrency: 10, waitP50Ms: 12 });
    expect(readEdge(snap({ other: { queued: 1, active: 2, nodeList: [{ app: '198.18.0.5:80' }] } }), 'dplweb', eps)).toEqual({ concurrency: 3, waitP50Ms: undefined });
    expect(readEdge(snap({ other: { queued: 9 } }), 'dplweb', eps)).toBeUndefined();
    expect(readEdge(snap({ dplweb: 'garbage', x: null }), 'dplweb', eps)).toBeUndefined();
    expect(readEdge(snap({ dplweb: { queued: '7', active: -1 } }), 'dplweb', eps)).toEqual({ concurrency: 0, waitP50Ms: undefined });
  });

  it('render: HAProxy servers whose address is one of ours', () => {
    const s = snap({ web: { servers: [{ address: '198.18.0.5:80', sessions: 3, queue: 2 }, { address: '198.18.0.9:80', sessions: 50 }, 'junk'] } });
    expect(readRender(s, 'dplweb', eps)).toEqual({ concurrency: 5 });
    expect(readRender(snap({ web: { servers: 'none' } }), 'dplweb', eps)).toBeUndefined();
  });
});
