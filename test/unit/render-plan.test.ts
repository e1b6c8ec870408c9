import { describe, expect, it } from 'vitest';
import { assignSlots, buildTemplateData, slotCount, type ServiceSpec } from '../../src/engine/frontends/model.js';
import { opCommands, planHaproxy, type HaproxyApplied, type SlotContent } from '../../src/engine/frontends/haproxy/plan.js';
import { semanticDiff, textDiff } from '../../src/engine/frontends/diff.js';
import { parseWait } from '../../src/ui/render.js';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';

const spec: ServiceSpec = { name: 'web', bind: { address: '127.0.0.1', port: 18400 }, mode: 'http', balance: 'roundrobin', check: { kind: 'tcp', path: '/', intervalMs: 2000 }, minSlots: 4 };
const slot = (id: string, port = 80, weight = 1): SlotContent => ({ id, address: '198.18.0.10', port, weight });
const applied = (slots: Array<SlotContent | null>, skeleton = 'k', config = JSON.stringify(slots)): HaproxyApplied => ({ skeletonHash: skeleton, configHash: config, slots: { web: slots } });

describe('slots', () => {
  it.each([
    [0, 8, 8],
    [8, 8, 8],
    [9, 8, 16],
    [33, 8, 64],
    [3, 1, 4],
  ])('slotCount(%i, min %i) = %i', (n, min, want) => expect(slotCount(n, min)).toBe(want));

  it.each([
    ['first pass: in order', undefined, ['a', 'b'], [], ['a', 'b', null, null]],
    ['a slot free before this pass is taken before one freed now', ['a', 'b', null, null], ['b', 'c'], [], [null, 'b', 'c', null]],
    ['a slot freed now is taken when no other is free', ['a', 'b', 'c', 'd'], ['b', 'c', 'd', 'e'], [], ['e', 'b', 'c', 'd']],
    ['lowest first among the long-free, then the just-freed', ['a', null, 'c', null], ['c', 'd', 'e'], [], [null, 'd', 'c', 'e']],
    ['a drained backend keeps its slot empty', ['a', 'b', 'c', null], ['b', 'c', 'd'], ['a'], [null, 'b', 'c', 'd']],
    ['a drained backend\'s slot is never reused: the table grows instead', ['a', 'b', 'c', 'd'], ['b', 'c', 'd', 'e'], ['a'], [null, 'b', 'c', 'd', 'e', null, null, null]],
  ] as Array<[string, Array<string | null> | undefined, string[], string[], Array<string | null>]>)('%s', (_, prev, ids, reserved, want) => {
    expect(assignSlots(prev, ids, 4, new Set(reserved))).toEqual(want);
  });

  it('grows to the next power of two when the backends do not fit, keeping places', () => {
    expect(assignSlots(['a', 'b'], ['a', 'b', 'c'], 2)).toEqual(['a', 'b', 'c', null]);
  });

  it('never shrinks by itself (a shrink would be a reload)', () => {
    expect(assignSlots(['a', 'b', 'c', 'd', 'e', null, null, null], ['a'], 4)).toHaveLength(8);
  });

  it('builds template data with slots and safe names', () => {
    const bad = { ...staticBackend('198.18.0.5', 80, 'web'), name: 'evil\nserver x 1.2.3.4:80' };
    const { data, slots } = buildTemplateData({ instance: 'i', proxy: 'haproxy', specs: [spec], backends: { web: [bad] } });
    expect(slots.web).toEqual([bad.id, null, null, null]);
    const b = data.services[0]!.slots[0]!.backend!;
    expect(b.name).not.toMatch(/\s/);
    expect(b.displayName).not.toContain('\n');
  });
});

describe('planHaproxy', () => {
  const rows: Array<[string, HaproxyApplied | undefined, HaproxyApplied, string, string[]]> = [
    ['first apply reloads', undefined, applied([slot('a')]), 'reload', []],
    ['structure change reloads', applied([slot('a')], 'k1'), applied([slot('a')], 'k2'), 'reload', []],
    ['same config: nothing', applied([slot('a'), null]), applied([slot('a'), null]), 'none', []],
    ['add fills a slot', applied([slot('a'), null], 'k', '1'), applied([slot('a'), slot('b', 81)], 'k', '2'), 'runtime', ['set server be_web/s2 addr 198.18.0.10 port 81', 'set server be_web/s2 weight 1', 'set server be_web/s2 state ready']],
    ['remove empties a slot', applied([slot('a'), slot('b')], 'k', '1'), applied([slot('a'), null], 'k', '2'), 'runtime', ['set server be_web/s2 state maint']],
    ['weight only', applied([slot('a')], 'k', '1'), applied([slot('a', 80, 5)], 'k', '2'), 'runtime', ['set server be_web/s1 weight 5']],
    ['replace fills before it empties', applied([slot('a'), null], 'k', '1'), applied([null, slot('b')], 'k', '2'), 'runtime', ['set server be_web/s2 addr 198.18.0.10 port 80', 'set server be_web/s2 weight 1', 'set server be_web/s2 state ready', 'set server be_web/s1 state maint']],
  ];
  it.each(rows)('%s', (_name, last, desired, action, commands) => {
    const plan = planHaproxy(last, desired);
    expect(plan.action).toBe(action);
    expect(plan.ops.flatMap(opCommands)).toEqual(commands);
  });

  it('names the slot growth as the reason', () => {
    expect(planHaproxy(applied([slot('a')], 'k1'), applied([slot('a'), null], 'k2')).reason).toBe('web: server slots 1 -> 2');
  });
});

describe('dry-run diff', () => {
  it('summarises backends and the apply path', () => {
    const d = semanticDiff({ web: ['a', 'b'] }, { web: ['b', 'c', 'd'] }, { action: 'runtime', ops: [], reason: '' });
    expect(d.summary).toBe('web: +2 backends, -1; runtime-only (no reload)');
    expect(semanticDiff({ web: ['a'] }, { web: ['a'] }, { action: 'reload', ops: [], reason: 'web: server slots 8 -> 16' }).summary).toBe('no backend changes; structural: reload (web: server slots 8 -> 16)');
  });
  it('prints a line diff with context', () => {
    expect(textDiff('a\nb\nc\nd\ne\nf\ng', 'a\nb\nc\nX\ne\nf\ng')).toBe('--- live\n+++ rendered\n@@\n b\n c\n+X\n-d\n e\n f\n@@\n');
    expect(textDiff('same', 'same')).toBe('');
  });
});

describe('--wait', () => {
  it.each([
    ['200ms:2s', { minMs: 200, maxMs: 2000 }],
    ['5:30', { minMs: 5000, maxMs: 30000 }],
    ['1s', { minMs: 1000, maxMs: 4000 }],
    ['0:0', { minMs: 0, maxMs: 0 }],
    ['2s:1s', null],
    ['x', null],
  ])('%s', (t, want) => expect(parseWait(t)).toEqual(want));
});
