import type { ChangeHint, Provider } from './provider.js';
import { sortBackends, type BackendSet } from '../model/backend.js';
import { Wakeup } from './wake.js';

/**
 * Several providers as one (Docker containers plus static "child servers", say). list() is the
 * union; any member's hint is a hint. A member whose hint stream fails fails the whole stream, so
 * the watcher's reconnect covers it.
 */
export class CompositeProvider implements Provider {
  readonly name: string;
  readonly resyncMs: number;

  constructor(readonly members: readonly Provider[]) {
    this.name = members.map((m) => m.name).join('+');
    this.resyncMs = Math.min(...members.map((m) => m.resyncMs ?? 30_000));
  }

  async list(signal?: AbortSignal): Promise<BackendSet> {
    const sets = await Promise.all(this.members.map((m) => m.list(signal)));
    return sortBackends(sets.flat());
  }

  async *changes(signal: AbortSignal): AsyncGenerator<ChangeHint> {
    const inner = new AbortController();
    const stop = () => inner.abort();
    signal.addEventListener('abort', stop, { once: true });
    const queue: ChangeHint[] = [];
    let failure: unknown = null;
    const wakeup = new Wakeup();
    const streams = this.members.filter((m) => m.changes);
    let connected = 0;
    const pumps = streams.map(async (m) => {
      try {
        for await (const h of m.changes!(inner.signal)) {
          if (h.reason === 'connected') {
            if (++connected === streams.length) queue.push(h);
          } else queue.push(h);
          wakeup.wake();
        }
      } catch (err) {
        failure ??= err;
        wakeup.wake();
      }
    });
    try {
      while (!signal.aborted && failure === null) {
        if (queue.length === 0) await wakeup.wait(inner.signal);
        while (queue.length) yield queue.shift()!;
      }
      if (failure !== null && !signal.aborted) throw failure;
    } finally {
      inner.abort();
      signal.removeEventListener('abort', stop);
      await Promise.allSettled(pumps);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.close?.()));
  }
}
