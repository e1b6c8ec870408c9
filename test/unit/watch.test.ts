import { describe, expect, it } from 'vitest';
import { getEventListeners } from 'node:events';
import { Wakeup } from '../../src/engine/discovery/wake.js';
import { watchBackends, type WatchUpdate } from '../../src/engine/discovery/watch.js';
import type { ChangeHint, Provider } from '../../src/engine/discovery/provider.js';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';
import type { BackendSet } from '../../src/engine/model/backend.js';

/** An in-memory provider: the watcher's contract is ours, so this is a fixture, not a mock. */
class MemoryProvider implements Provider {
  readonly name = 'memory';
  set: BackendSet = [];
  lists = 0;
  failNextLists = 0;
  failStreams = 0;
  private push: ((h: ChangeHint) => void) | null = null;
  async list(): Promise<BackendSet> {
    this.lists++;
    if (this.failNextLists > 0) {
      this.failNextLists--;
      throw new Error('list failed');
    }
    return this.set;
  }
  async *changes(signal: AbortSignal): AsyncGenerator<ChangeHint> {
    if (this.failStreams > 0) {
      this.failStreams--;
      throw new Error('stream lost');
    }
    const q: ChangeHint[] = [{ reason: 'connected' }];
    let wake: (() => void) | null = null;
    this.push = (h) => {
      q.push(h);
      wake?.();
    };
    while (!signal.aborted) {
      while (q.length) yield q.shift()!;
      await new Promise<void>((r) => {
        wake = r;
        signal.addEventListener('abort', () => r(), { once: true });
      });
    }
  }
  hint(reason: string) {
    this.push?.({ reason });
  }
}

const b = (ip: string) => staticBackend(ip, 80, 'web');

describe('watchBackends', () => {
  it('yields the initial set, then only real changes; a burst of hints is one list', async () => {
    const p = new MemoryProvider();
    p.set = [b('198.18.0.2')];
    const ac = new AbortController();
    const it = watchBackends(p, { signal: ac.signal, debounceMs: 20, resyncMs: 60_000 });
    const first = await it.next();
    expect((first.value as WatchUpdate).changes.map((c) => c.type)).toEqual(['added']);
    expect((first.value as WatchUpdate).reason).toBe('initial');

    await new Promise((r) => setTimeout(r, 30)); // hint stream connected
    const listsBefore = p.lists;
    p.set = [b('198.18.0.2'), b('198.18.0.3')];
    for (let i = 0; i < 20; i++) p.hint('event:start');
    const second = await it.next();
    expect((second.value as WatchUpdate).changes.map((c) => `${c.type} ${c.backend.address}`)).toEqual(['added 198.18.0.3']);
    expect(p.lists - listsBefore).toBe(1);
    ac.abort();
    await it.return(undefined);
  });

  it('keeps going through failed lists and lost streams, and resyncs', async () => {
    const p = new MemoryProvider();
    p.failNextLists = 2;
    p.failStreams = 1;
    p.set = [b('198.18.0.2')];
    const ac = new AbortController();
    const it = watchBackends(p, { signal: ac.signal, debounceMs: 0, resyncMs: 100 });
    const first = await it.next();
    expect((first.value as WatchUpdate).backends).toHaveLength(1);
    p.set = [];
    const second = await it.next(); // found by the periodic resync, no hint needed
    expect((second.value as WatchUpdate).changes.map((c) => c.type)).toEqual(['removed']);
    ac.abort();
    await it.return(undefined);
  }, 15_000);
});

describe('Wakeup (hint streams waiting between hints)', () => {
  it('leaves no abort listener behind, however many waits', async () => {
    const ac = new AbortController();
    const w = new Wakeup();
    for (let i = 0; i < 50; i++) {
      const p = w.wait(ac.signal);
      w.wake();
      await p;
    }
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    const last = w.wait(ac.signal);
    ac.abort();
    await last;
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });
});
