import { describe, expect, it } from 'vitest';
import { HealthChecker, parseCheck, type CheckSpec } from '../../src/engine/health/checker.js';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';
import { UserError } from '../../src/engine/errors.js';

describe('parseCheck', () => {
  it.each([
    ['tcp', 'tcp /'],
    ['http', 'http /'],
    ['http:/healthz?full=1', 'http /healthz?full=1'],
  ])('%s', (text, want) => {
    const s = parseCheck(text);
    expect(`${s.kind} ${s.path}`).toBe(want);
  });
  it.each(['udp', 'http:healthz', 'http:/a b', 'http:/\r\nX: y'])('rejects %j', (t) => expect(() => parseCheck(t)).toThrowError(UserError));
});

/** Drive rise/fall with a scripted probe: the sequence of results in, the health after each out. */
describe('HealthChecker rise/fall', () => {
  const spec: CheckSpec = { kind: 'tcp', path: '/', intervalMs: 5, timeoutMs: 5, rise: 2, fall: 3 };
  const cases: Array<[string, boolean[], string[]]> = [
    ['rises after 2 successes', [true, true, true], ['starting', 'healthy', 'healthy']],
    ['a failure while starting keeps it starting', [false, true, true], ['starting', 'starting', 'healthy']],
    ['falls after 3 failures', [true, true, false, false, false], ['starting', 'healthy', 'healthy', 'healthy', 'unhealthy']],
    ['needs 2 successes to come back', [true, true, false, false, false, true, true], ['starting', 'healthy', 'healthy', 'healthy', 'unhealthy', 'unhealthy', 'healthy']],
  ];
  it.each(cases)('%s', async (_n, results, want) => {
    const b = staticBackend('198.18.0.2', 80, 'web');
    let i = 0;
    const seen: string[] = [];
    let checker!: HealthChecker;
    const done = new Promise<void>((resolve) => {
      checker = new HealthChecker(spec, () => {}, async () => {
        const r = results[i++] ?? true;
        // Record the verdict after this probe is applied (next tick).
        setImmediate(() => {
          seen.push(checker.apply([b], true)[0]!.health);
          if (seen.length === results.length) resolve();
        });
        return r;
      });
    });
    checker.setTargets([b]);
    await done;
    checker.stop();
    expect(seen).toEqual(want);
    expect(checker.apply([b]).length).toBe(0); // stopped: no verdict, not served
  });
});

describe('check numbers have a documented range (CHECK_RANGES)', () => {
  it.each([
    [{ intervalMs: 99999999999999999999999 }, /check interval \(ms\) 1e\+23 is out of range/],
    [{ intervalMs: 99 }, /check interval/],
    [{ timeoutMs: 60_001 }, /check timeout/],
    [{ rise: 0 }, /rise 0/],
    [{ fall: 101 }, /fall 101/],
    [{ rise: 1.5 }, /rise 1.5/],
  ])('%j is refused', (opts, message) => {
    expect(() => parseCheck('tcp', opts)).toThrow(message);
  });
  it('the ends of each range are accepted', () => {
    expect(parseCheck('tcp', { intervalMs: 100, timeoutMs: 60_000, rise: 100, fall: 1 })).toMatchObject({ intervalMs: 100, timeoutMs: 60_000, rise: 100, fall: 1 });
  });
});
