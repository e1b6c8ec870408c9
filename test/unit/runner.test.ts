import { describe, expect, it } from 'vitest';
import { SyncRunner } from '../../src/engine/runtime/runner.js';
import { FakeClock } from '../support/fake-clock.js';

function setup(opts: { min: number; max?: number; fail?: (n: number) => boolean }) {
  const clock = new FakeClock();
  const runs: Array<{ at: number; reason: string }> = [];
  const runner = new SyncRunner(
    async (reason) => {
      runs.push({ at: clock.now(), reason });
      if (opts.fail?.(runs.length)) throw new Error('apply failed');
    },
    { minIntervalMs: opts.min, maxIntervalMs: opts.max, retryBaseMs: 100, retryCapMs: 1000, clock },
  );
  return { clock, runs, runner };
}

describe('SyncRunner', () => {
  it('runs at once, then coalesces a burst into one run per min interval', async () => {
    const { clock, runs, runner } = setup({ min: 1000 });
    runner.request('a');
    await clock.advance(0);
    for (let i = 0; i < 50; i++) runner.request(`burst${i}`);
    await clock.advance(999);
    expect(runs.map((r) => r.at)).toEqual([0]);
    await clock.advance(1);
    expect(runs.map((r) => [r.at, r.reason])).toEqual([[0, 'a'], [1000, 'burst0']]);
    await clock.advance(5000);
    expect(runs).toHaveLength(2);
  });

  it('resyncs every max interval when nothing asks', async () => {
    const { clock, runs, runner } = setup({ min: 100, max: 1000 });
    runner.start();
    await clock.advance(3500);
    expect(runs.map((r) => r.at)).toEqual([0, 1000, 2000, 3000]);
    runner.stop();
    await clock.advance(5000);
    expect(runs).toHaveLength(4);
  });

  it('retries a failure with backoff, never sooner than the min interval', async () => {
    const { clock, runs, runner } = setup({ min: 200, fail: (n) => n <= 2 });
    runner.request('x');
    await clock.advance(0);
    expect(runner.lastError).toBe('apply failed');
    await clock.advance(3000);
    expect(runs.length).toBe(3);
    expect(runs[1]!.reason).toBe('retry');
    expect(runs[1]!.at - runs[0]!.at).toBeGreaterThanOrEqual(200);
    expect(runner.lastError).toBeNull();
  });

  it('a request during a run makes exactly one more run', async () => {
    const clock = new FakeClock();
    let release!: () => void;
    let n = 0;
    const runner = new SyncRunner(
      () => {
        n++;
        return n === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
      },
      { minIntervalMs: 10, clock },
    );
    runner.request();
    await clock.advance(0);
    runner.request();
    runner.request();
    release();
    await clock.advance(100);
    expect(n).toBe(2);
    await runner.idle();
  });
});

describe('SyncRunner stop and idle', () => {
  it('idle() resolves after stop(), with a request pending or a failed run in flight', async () => {
    const { clock, runner } = setup({ min: 1000, fail: () => true });
    runner.request('a');
    await clock.advance(0); // failed; a retry is pending
    runner.request('b');
    runner.stop();
    await expect(runner.idle()).resolves.toBeUndefined();

    const clock2 = new FakeClock();
    let release!: () => void;
    const r2 = new SyncRunner(() => new Promise<void>((_res, rej) => (release = () => rej(new Error('x')))), { minIntervalMs: 10, clock: clock2 });
    r2.request();
    await clock2.advance(0);
    const idle = r2.idle();
    r2.stop();
    release();
    await expect(idle).resolves.toBeUndefined();
  });
});
