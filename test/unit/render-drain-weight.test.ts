import { describe, expect, it } from 'vitest';
import { buildTemplateData, type ServiceSpec } from '../../src/engine/frontends/model.js';
import { appliedSlots, planHaproxy, type HaproxyApplied } from '../../src/engine/frontends/haproxy/plan.js';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';

// A drain is desired state (frontends/drain.ts): a draining backend keeps its slot with weight 0,
// so the plan sets it through the runtime API and a reload keeps it (the config says weight 0).
const spec: ServiceSpec = { name: 'web', bind: { address: '127.0.0.1', port: 18400 }, mode: 'http', balance: 'roundrobin', check: { kind: 'tcp', path: '/', intervalMs: 2000 }, minSlots: 2 };
const a = staticBackend('198.18.0.10', 80, 'web');
const b = staticBackend('198.18.0.11', 80, 'web');
const slotsOf = (draining: string[]) => appliedSlots(buildTemplateData({ instance: 'i', proxy: 'haproxy', specs: [spec], backends: { web: [a, b] }, draining: new Set(draining) }).data);
const applied = (draining: string[], configHash = 'same'): HaproxyApplied => ({ skeletonHash: 'k', configHash, slots: slotsOf(draining) });

describe('render: a draining backend in desired state', () => {
  it('keeps its slot with weight 0; the others keep theirs', () => {
    expect(slotsOf([a.id]).web).toEqual([expect.objectContaining({ id: a.id, weight: 0 }), expect.objectContaining({ id: b.id, weight: 1 })]);
  });

  it.each([
    ['draining starts: weight 0 at runtime', [], [a.id], [{ op: 'weight', server: 's1', weight: 0 }]],
    ['the same text (a template without weights) still sets the weight', [], [a.id], [{ op: 'weight', server: 's1', weight: 0 }], 'same'],
    ['undrained before it left: weight back', [a.id], [], [{ op: 'weight', server: 's1', weight: 1 }]],
    ['nothing changed', [a.id], [a.id], []],
  ] as Array<[string, string[], string[], object[], string?]>)('%s', (_, before, after, ops, hash) => {
    const plan = planHaproxy(applied(before), applied(after, hash ?? `after-${after.join()}`));
    expect(plan.action).toBe(ops.length ? 'runtime' : 'none');
    expect(plan.ops).toEqual(ops.map((o) => expect.objectContaining(o)));
  });
});
