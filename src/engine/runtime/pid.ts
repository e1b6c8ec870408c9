import { readFileSync } from 'node:fs';

/**
 * Is a process with this pid running? Signal 0 checks without sending anything; EPERM means it
 * exists but belongs to someone else. Not a positive integer (an empty or garbled pid file): no.
 * A zombie (state Z or X in /proc/<pid>/stat: exited, not yet reaped by its parent) answers
 * signal 0 too, but serves nothing and holds no sockets: dead.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(procStatState(pid));
}

export const isZombie = (state: string | null): boolean => state === 'Z' || state === 'X';

function procStatState(pid: number): string | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.state ?? null;
  } catch {
    return null; // no /proc (or gone meanwhile): signal 0 is all we know
  }
}

export interface ProcStat {
  readonly state: string;
  readonly ppid: number;
  readonly pgrp: number;
  readonly session: number;
}

/** Fields of one /proc/<pid>/stat line (pure); the command name may hold spaces and ')'. */
export function parseProcStat(text: string): ProcStat | null {
  const f = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  if (f.length < 4 || !/^[A-Za-z]$/.test(f[0]!)) return null;
  const [ppid, pgrp, session] = [f[1], f[2], f[3]].map(Number) as [number, number, number];
  return [ppid, pgrp, session].every(Number.isInteger) ? { state: f[0]!, ppid, pgrp, session } : null;
}
