import React, { useEffect, useState } from 'react';
import { Box, render, Text } from 'ink';
import type { RolloutEvent } from '../engine/deploy/rollout.js';
import { printable } from '../engine/model/validate.js';

/**
 * The live rollout view on a TTY: the service's phase, then one line per replica with its state
 * (creating, starting, healthy, ready, draining, stopping, removed, failed). A small store that
 * folds events, one subscribing hook, a presentational component.
 */
interface Line {
  id: string;
  name: string;
  index: number;
  revision: string;
  phase: string;
  detail?: string;
}

export class ProgressStore {
  phase = '';
  message = '';
  lines = new Map<string, Line>();
  private listeners = new Set<() => void>();
  version = 0;

  apply(e: RolloutEvent): void {
    if (e.type === 'phase') {
      this.phase = e.phase;
      this.message = e.message;
    } else if (e.type === 'replica') {
      this.lines.set(e.id, { id: e.id, name: e.name, index: e.index, revision: e.revision, phase: e.phase === 'existing' ? 'running' : e.phase, detail: e.detail });
    } else {
      const l = this.lines.get(e.id);
      if (l) l.detail = e.outcomes.map((o) => `${o.socket} ${o.outcome}`).join(', ') || 'no LB';
    }
    this.version++;
    for (const f of this.listeners) f();
  }

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }
}

function useStore(store: ProgressStore): number {
  const [v, setV] = useState(store.version);
  useEffect(() => store.subscribe(() => setV(store.version)), [store]);
  return v;
}

const COLORS: Record<string, string> = { ready: 'green', healthy: 'green', failed: 'red', removed: 'gray', draining: 'yellow', stopping: 'yellow', starting: 'cyan', creating: 'cyan' };

export function DeployProgress({ store, service }: { store: ProgressStore; service: string }) {
  useStore(store);
  const lines = [...store.lines.values()].sort((a, b) => a.index - b.index || (a.name < b.name ? -1 : 1));
  return (
    <Box flexDirection="column">
      <Text bold>
        {printable(service, 40)} {store.phase ? `— ${store.phase}` : ''}
      </Text>
      {store.message ? <Text dimColor>{printable(store.message, 200)}</Text> : null}
      {lines.map((l) => (
        <Text key={l.id}>
          {'  '}#{l.index} {printable(l.name, 50)} {l.revision.slice(0, 21)} <Text color={COLORS[l.phase] ?? 'white'}>{l.phase}</Text>
          {l.detail ? <Text dimColor> {printable(l.detail, 100)}</Text> : null}
        </Text>
      ))}
    </Box>
  );
}

/** Mount the live view on stderr; returns the event sink and a function that unmounts it. */
export function startProgress(service: string): { onEvent: (e: RolloutEvent) => void; stop: () => void } {
  const store = new ProgressStore();
  const app = render(<DeployProgress store={store} service={service} />, { stdout: process.stderr, maxFps: 10, patchConsole: false });
  return {
    onEvent: (e) => store.apply(e),
    stop: () => app.unmount(),
  };
}
