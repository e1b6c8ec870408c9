import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isAvailableOld, planStep, simulatePlan, type Replica } from '../../src/engine/deploy/plan.js';

const OLD = 'aaaaaaaaaaaa-11111111';
const NEW = 'bbbbbbbbbbbb-22222222';
const r = (id: string, revision: string, index: number, more: Partial<Replica> = {}): Replica => ({
  id,
  name: `svc-${id}`,
  revision,
  index,
  state: 'running',
  health: 'none',
  created: `2026-01-01T00:00:0${index}Z`,
  ...more,
});
const none = { ready: new Set<string>(), failed: new Set<string>() };
const summary = (s: ReturnType<typeof planStep>) => ({
  done: s.done,
  gate: s.gate.map((x) => x.id),
  create: s.create,
  remove: s.remove.map((x) => `${x.replica.id}:${x.reason}`),
});

describe('planStep', () => {
  const cases: Array<{ name: string; observed: Replica[]; want: { replicas: number; surge?: number; unavailable?: number }; ready?: string[]; failed?: string[]; expect: ReturnType<typeof summary> }> = [
    { name: 'nothing yet: create all', observed: [], want: { replicas: 3 }, expect: { done: false, gate: [], create: [1, 2, 3], remove: [] } },
    { name: 'converged', observed: [r('a', NEW, 1), r('b', NEW, 2)], want: { replicas: 2 }, ready: ['a', 'b'], expect: { done: true, gate: [], create: [], remove: [] } },
    { name: 'new replicas found running are gated first', observed: [r('a', NEW, 1)], want: { replicas: 1 }, expect: { done: false, gate: ['a'], create: [], remove: [] } },
    { name: 'scale up fills free indexes', observed: [r('a', NEW, 2)], want: { replicas: 3 }, ready: ['a'], expect: { done: false, gate: [], create: [1, 3], remove: [] } },
    { name: 'scale down removes highest index first', observed: [r('a', NEW, 1), r('b', NEW, 2), r('c', NEW, 3)], want: { replicas: 1 }, ready: ['a', 'b', 'c'], expect: { done: false, gate: [], create: [], remove: ['c:scale down', 'b:scale down'] } },
    { name: 'scale to zero', observed: [r('a', NEW, 1)], want: { replicas: 0 }, ready: ['a'], expect: { done: false, gate: [], create: [], remove: ['a:scale down'] } },
    { name: 'rolling, surge 1 / unavailable 0: one new first, no old removed', observed: [r('o1', OLD, 1), r('o2', OLD, 2), r('o3', OLD, 3)], want: { replicas: 3 }, expect: { done: false, gate: [], create: [1], remove: [] } },
    { name: 'rolling: one new ready -> one old goes', observed: [r('o1', OLD, 1), r('o2', OLD, 2), r('o3', OLD, 3), r('n1', NEW, 1)], want: { replicas: 3 }, ready: ['n1'], expect: { done: false, gate: [], create: [], remove: ['o3:old revision'] } },
    { name: 'rolling, surge 0 / unavailable 1: an old one goes first', observed: [r('o1', OLD, 1), r('o2', OLD, 2)], want: { replicas: 2, surge: 0, unavailable: 1 }, expect: { done: false, gate: [], create: [], remove: ['o2:old revision'] } },
    { name: 'rolling, surge 2: two at once', observed: [r('o1', OLD, 1), r('o2', OLD, 2), r('o3', OLD, 3)], want: { replicas: 3, surge: 2 }, expect: { done: false, gate: [], create: [1, 2], remove: [] } },
    { name: 'all new ready: every old goes', observed: [r('o1', OLD, 1), r('n1', NEW, 1), r('n2', NEW, 2)], want: { replicas: 2 }, ready: ['n1', 'n2'], expect: { done: false, gate: [], create: [], remove: ['o1:old revision'] } },
    { name: 'failed new replica is removed, the old keep serving', observed: [r('o1', OLD, 1), r('n1', NEW, 1)], want: { replicas: 1 }, failed: ['n1'], expect: { done: false, gate: [], create: [1], remove: ['n1:failed'] } },
    { name: 'crashed old replica is removed at once and not counted', observed: [r('o1', OLD, 1, { state: 'exited' }), r('o2', OLD, 2)], want: { replicas: 2 }, expect: { done: false, gate: [], create: [1, 2], remove: ['o1:leftover'] } },
    { name: 'unhealthy old replica is not available', observed: [r('o1', OLD, 1, { health: 'unhealthy' }), r('o2', OLD, 2)], want: { replicas: 2 }, expect: { done: false, gate: [], create: [1, 2], remove: ['o1:old revision'] } },
    { name: 'leftover new container of an interrupted run (created, not started)', observed: [r('n1', NEW, 1, { state: 'created' })], want: { replicas: 1 }, expect: { done: false, gate: [], create: [1], remove: ['n1:leftover'] } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const step = planStep(c.observed, { revision: NEW, replicas: c.want.replicas, surge: c.want.surge ?? 1, unavailable: c.want.unavailable ?? 0 }, { ready: new Set(c.ready), failed: new Set(c.failed) });
      expect(summary(step)).toEqual(c.expect);
    });
  }
});

describe('simulatePlan (--dry-run)', () => {
  it('a 3-replica rolling update alternates create and remove, new before old', () => {
    const steps = simulatePlan([r('o1', OLD, 1), r('o2', OLD, 2), r('o3', OLD, 3)], { revision: NEW, replicas: 3, surge: 1, unavailable: 0 });
    expect(steps.map((s) => `${s.create.length}+ ${s.remove.length}-`)).toEqual(['1+ 0-', '0+ 1-', '1+ 0-', '0+ 1-', '1+ 0-', '0+ 1-']);
  });
  it('nothing to do when converged', () => {
    expect(simulatePlan([r('a', NEW, 1)], { revision: NEW, replicas: 1, surge: 1, unavailable: 0 })).toEqual([]);
  });
});

describe('rolling update invariants (property)', () => {
  it('never above replicas + surge, never fewer than replicas - unavailable available, always converges', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), (oldN, want, surge0, unavail) => {
        const surge = surge0 === 0 && unavail === 0 ? 1 : surge0;
        let world: Replica[] = Array.from({ length: oldN }, (_, i) => r(`o${i}`, OLD, i + 1));
        const ready = new Set<string>();
        let seq = 0;
        for (let i = 0; i < 200; i++) {
          const step = planStep(world, { revision: NEW, replicas: want, surge, unavailable: unavail }, { ready, failed: new Set() });
          if (step.done) {
            expect(world.filter((x) => x.revision === NEW)).toHaveLength(want);
            expect(world.filter((x) => x.revision === OLD)).toHaveLength(0);
            return;
          }
          const gone = new Set(step.remove.map((x) => x.replica.id));
          world = world.filter((x) => !gone.has(x.id));
          const available = world.filter((x) => (x.revision === NEW ? ready.has(x.id) : isAvailableOld(x))).length;
          if (oldN >= want) expect(available).toBeGreaterThanOrEqual(Math.min(want - unavail, oldN));
          for (const idx of step.create) {
            const id = `n${++seq}`;
            world.push(r(id, NEW, idx));
            ready.add(id);
          }
          for (const g of step.gate) ready.add(g.id);
          expect(world.length).toBeLessThanOrEqual(Math.max(oldN, want) + surge);
        }
        throw new Error('did not converge');
      }),
    );
  });
});
