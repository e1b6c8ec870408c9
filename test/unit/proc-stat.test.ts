import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isZombie, parseProcStat, pidAlive } from '../../src/engine/runtime/pid.js';

describe('parseProcStat', () => {
  it.each([
    ['nginx worker', '7248 (nginx) S 7247 7247 7247 0 -1 4194624 12 0', { state: 'S', ppid: 7247, pgrp: 7247, session: 7247 }],
    ['orphan re-parented to init', '7248 (nginx) S 1 7247 7247 0 -1', { state: 'S', ppid: 1, pgrp: 7247, session: 7247 }],
    ['zombie', '15305 (nginx) Z 1 15305 15305 0 -1', { state: 'Z', ppid: 1, pgrp: 15305, session: 15305 }],
    ['name with spaces and parens', '42 (a b) c)) R 1 42 40 0', { state: 'R', ppid: 1, pgrp: 42, session: 40 }],
  ])('%s', (_, text, want) => expect(parseProcStat(text)).toEqual(want));

  it.each([[''], ['garbage'], ['1 (x) S 1 2'], ['1 (x) 5 1 2 3']])('%j: null', (text) => expect(parseProcStat(text)).toBeNull());

  it('Z and X are zombies', () => expect(['Z', 'X', 'S', 'R', 'D', null].map(isZombie)).toEqual([true, true, false, false, false, false]));
});

describe('pidAlive', () => {
  it('a zombie answers signal 0 but is dead', async () => {
    // The background child exits 200 ms later, after its parent exec'd sleep, which never reaps
    // it (a child that exited before the exec could be reaped by sh: flaky, seen on CI).
    const parent = execa('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 10'], { reject: false });
    try {
      const zombie = await new Promise<number>((r) => parent.stdout!.once('data', (d) => r(Number(String(d).trim()))));
      const end = Date.now() + 5000;
      while (Date.now() < end && parseProcStat(readFileSync(`/proc/${zombie}/stat`, 'utf8'))?.state !== 'Z') await new Promise((r) => setTimeout(r, 10));
      expect(() => process.kill(zombie, 0)).not.toThrow();
      expect(pidAlive(zombie)).toBe(false);
      expect(pidAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
      await parent;
    }
  });

  it.each([[0], [-1], [1.5], [NaN]])('%s: no', (pid) => expect(pidAlive(pid)).toBe(false));
});
