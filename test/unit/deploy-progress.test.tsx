import React from 'react';
import { describe, expect, it } from 'vitest';
import { render } from 'ink-testing-library';
import { DeployProgress, ProgressStore } from '../../src/ui/deploy-progress.js';
import { progressLine } from '../../src/ui/deploy.js';

const NEW = 'ee4796e34c40-a8eab140';
const OLD = 'ee4796e34c40-618f2967';

describe('deploy progress', () => {
  it('Ink: a line per replica with its state, updated as events arrive', async () => {
    const store = new ProgressStore();
    const app = render(<DeployProgress store={store} service="dplweb" />);
    store.apply({ type: 'phase', phase: 'rolling', message: 'rolling: 0/2 new ready' });
    store.apply({ type: 'replica', id: 'o1', name: 'dplweb-618f2967-aaaaaa', revision: OLD, index: 1, phase: 'existing', detail: 'running' });
    store.apply({ type: 'replica', id: 'n1', name: 'dplweb-a8eab140-bbbbbb', revision: NEW, index: 1, phase: 'creating' });
    store.apply({ type: 'replica', id: 'n1', name: 'dplweb-a8eab140-bbbbbb', revision: NEW, index: 1, phase: 'ready', detail: '2100 ms' });
    store.apply({ type: 'replica', id: 'o1', name: 'dplweb-618f2967-aaaaaa', revision: OLD, index: 1, phase: 'draining' });
    await new Promise((r) => setTimeout(r, 50));
    const frame = app.lastFrame() ?? '';
    expect(frame).toContain('dplweb — rolling');
    expect(frame).toMatch(/#1 dplweb-a8eab140-bbbbbb .* ready 2100 ms/);
    expect(frame).toMatch(/#1 dplweb-618f2967-aaaaaa .* draining/);
    app.unmount();
  });

  it('plain lines: one per change, none for replicas merely found', () => {
    expect(progressLine({ type: 'replica', id: 'x', name: 'n', revision: NEW, index: 2, phase: 'existing' })).toBeNull();
    expect(progressLine({ type: 'replica', id: 'x', name: 'n\u001b[2J', revision: NEW, index: 2, phase: 'failed', detail: 'exited with code 1' })).toBe(`  n?[2J #2 ${NEW} failed (exited with code 1)`);
    expect(progressLine({ type: 'drain', id: 'x', outcomes: [{ socket: 'render.web', outcome: 'drained' }] })).toBe('  drain x: render.web: drained');
  });
});
