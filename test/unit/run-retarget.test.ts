import { describe, expect, it } from 'vitest';
import type { BackendSet } from '../../src/engine/model/backend.js';
import { nullLogger } from '../../src/engine/runtime/logger.js';
import type { StateStore } from '../../src/engine/runtime/state-store.js';
import type { RunApplier, SyncOutcome } from '../../src/engine/run/appliers.js';
import { parseConfig, type RunConfig } from '../../src/engine/run/config.js';
import { MetricsRegistry } from '../../src/engine/run/metrics.js';
import { Pipeline } from '../../src/engine/run/pipeline.js';
import { Reloader } from '../../src/engine/run/reload.js';

/**
 * A fleet version (or SIGHUP) that only changes what a source lists is put in force on the
 * running pipeline: the changed source is listed again, the appliers and their runners stay
 * (no stop, no rebuild: the push -> serving fast path). Anything else is a full reload.
 */
const config = (backends: string[], port = 25590, minBackends = 1): RunConfig =>
  parseConfig(
    `version: 1
name: rt
sources:
  web:
    static: { backends: [${backends.map((b) => `"${b}"`).join(', ')}] }
  other:
    static: { backends: ["127.0.0.1:25599"] }
services:
  - name: web
    sources: [web]
    guardrails: { min_backends: ${minBackends}, max_change: 100 }
    haproxy: { port: ${port}, mode: http }
  - name: other
    sources: [other]
    haproxy: { port: 25591, mode: http }
sync: { min_interval_ms: 50 }
`,
    'rt.yaml',
  );

class MemoryStore implements StateStore {
  readonly location = '/nonexistent';
  private readonly m = new Map<string, unknown>();
  async get<T>(key: string): Promise<T | undefined> {
    return this.m.get(key) as T | undefined;
  }
  async put<T>(key: string, value: T): Promise<void> {
    this.m.set(key, value);
  }
  async delete(key: string): Promise<void> {
    this.m.delete(key);
  }
  async keys(): Promise<string[]> {
    return [...this.m.keys()];
  }
}

class FakeApplier implements RunApplier {
  readonly name = 'haproxy';
  readonly kind = 'haproxy' as const;
  readonly syncs: Array<Record<string, string[]>> = [];
  waiters: Array<() => void> = [];
  services = () => ['web', 'other'];
  async sync(backends: Readonly<Record<string, BackendSet>>): Promise<SyncOutcome> {
    this.syncs.push(Object.fromEntries(Object.entries(backends).map(([k, v]) => [k, v.map((b) => `${b.address}:${b.port}`)])));
    for (const w of this.waiters.splice(0)) w();
    return { action: 'runtime', reason: 'test' };
  }
  next(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  async status() {
    return {};
  }
  async close() {}
}

function pipelineOf(c: RunConfig, applier: FakeApplier): Pipeline {
  return new Pipeline(c, [applier], { store: new MemoryStore(), logger: nullLogger, metrics: new MetricsRegistry(nullLogger), hooks: { event: () => {}, extraBackends: () => ({}) } });
}

describe('a config that changes only what sources list is put in force in place', () => {
  it('the changed source is listed again and synced; the other keeps its set; no rebuild', async () => {
    const a = new FakeApplier();
    const p = pipelineOf(config(['127.0.0.1:25592']), a);
    const first = a.next();
    await p.start();
    await first;
    const runner = p.runners.get('haproxy');
    const synced = a.next();
    expect(p.retarget(config(['127.0.0.1:25593']))).toBe(true);
    await synced;
    expect(a.syncs.at(-1)).toEqual({ web: ['127.0.0.1:25593'], other: ['127.0.0.1:25599'] });
    expect(p.runners.get('haproxy')).toBe(runner);
    expect(p.config.hash).toBe(config(['127.0.0.1:25593']).hash);
    await p.stop();
  });

  it.each([
    ['a service setting changed', config(['127.0.0.1:25592'], 25594)],
    ['a guardrail changed', config(['127.0.0.1:25592'], 25590, 2)],
  ])('not in place when %s', async (_n, next) => {
    const a = new FakeApplier();
    const p = pipelineOf(config(['127.0.0.1:25592']), a);
    await p.start();
    expect(p.retarget(next)).toBe(false);
    expect(p.config.hash).toBe(config(['127.0.0.1:25592']).hash);
    await p.stop();
  });

  it('the reloader takes the in-place path: nothing is built, nothing stopped', async () => {
    let current = config(['127.0.0.1:25592']);
    const calls: string[] = [];
    const r = new Reloader(
      {
        config: () => current,
        setConfig: (c) => (current = c),
        build: async () => (calls.push('build'), []),
        stopPipeline: async () => (calls.push('stop'), { health: new Map(), accepted: new Map() }),
        start: async () => void calls.push('start'),
        retarget: (c) => c.services[0]!.haproxy!.port === 25590,
        unchanged: () => {},
        applied: () => calls.push('applied'),
        event: () => {},
      },
      new MetricsRegistry(nullLogger),
      nullLogger,
    );
    expect((await r.reloadWith(config(['127.0.0.1:25593']))).result).toBe('applied');
    expect(calls).toEqual(['applied']);
    expect(current.hash).toBe(config(['127.0.0.1:25593']).hash);
    calls.length = 0;
    expect((await r.reloadWith(config(['127.0.0.1:25593'], 25594))).result).toBe('applied');
    expect(calls).toEqual(['build', 'stop', 'start', 'applied']);
  });
});
