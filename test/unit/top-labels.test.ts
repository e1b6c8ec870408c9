import { describe, expect, it } from 'vitest';
import { TopStore } from '../../src/engine/top/store.js';
import { adaptSnapshot } from '../../src/engine/top/adapters.js';
import type { Snapshot } from '../../src/engine/runtime/status.js';
import { fixtureSnapshot, type FixtureKind } from '../fixtures/top/content.js';
import { layout, rowCells, SERVICE_COLUMNS } from '../../src/ui/top/columns.js';

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const sample = (kind: FixtureKind, name: string) => adaptSnapshot({ ...fixtureSnapshot(kind, { backends: 1, t: 0 }), name } as Snapshot);

describe('top: rows of different sources never look the same', () => {
  it.each([
    ['two edges, same route', [['edge', '8080'], ['edge', '9090']], ['api@8080', 'api@9090']],
    ['one edge', [['edge', '8080']], ['api']],
    ['an edge and a render: different kinds, names kept', [['edge', '8080'], ['render', 'lb']], ['api', 'web']],
    ['two renders of one service', [['render', 'a'], ['render', 'b']], ['web@a', 'web@b']],
  ] as const)('%s', (_n, sources, labels) => {
    const store = new TopStore();
    for (const [kind, name] of sources) store.ingest(sample(kind, name), T0);
    const rows = store.state(T0).services;
    expect(rows.map((r) => r.label)).toEqual(labels);
    // The service itself is unchanged (actions and filters use it); the table shows the label.
    expect(new Set(rows.map((r) => r.service)).size).toBe(1 + Number(sources.some(([k]) => k === 'render') && sources.some(([k]) => k === 'edge')));
    const cells = rows.map((r) => rowCells(layout(SERVICE_COLUMNS, 120), r).join(' '));
    expect(new Set(cells).size).toBe(cells.length);
  });
});
