import { readdir, readFile } from 'node:fs/promises';
import { sleep } from '../../runtime/clock.js';
import { parseProcStat, pidAlive } from '../../runtime/pid.js';

/**
 * Orphaned workers of our nginx. `kill -9` of the master leaves its workers running (re-parented
 * to init) with the listening sockets and the old config: a new master cannot bind, and the
 * orphans go on serving what is no longer current.
 *
 * Proof that a process is ours, from /proc alone: nginx's master daemonizes with setsid() before
 * it writes the pid file, so the pid in OUR pid file is the id of its session and process group,
 * and every worker it forks inherits both. The kernel does not hand a pid out again while a
 * session or group of that id still has a member, so a live process whose session and group are
 * the recorded pid was started by that master. Its title ("nginx: worker process") says it is
 * nginx. Another nginx on the host has its own session: never touched.
 */
export interface Orphan {
  readonly pid: number;
  readonly title: string;
}

/** Processes left over from `master` (the pid our pid file names), when that master is dead. */
export async function nginxOrphans(master: number): Promise<Orphan[]> {
  if (!Number.isInteger(master) || master <= 1 || pidAlive(master)) return [];
  const out: Orphan[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === master) continue;
    const st = parseProcStat(await readFile(`/proc/${name}/stat`, 'utf8').catch(() => ''));
    if (!st || st.session !== master || st.pgrp !== master) continue;
    const title = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).replace(/\0+$/, '').replace(/\0/g, ' ');
    if (title.startsWith('nginx: ') && pidAlive(Number(name))) out.push({ pid: Number(name), title });
  }
  return out;
}

const signal = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig);
  } catch {
    // exited meanwhile
  }
};

/** Wait until `master` has no orphans left (or `ms` passed); re-proven on every look, so a pid reused meanwhile is never signalled. */
async function survivors(master: number, ms: number): Promise<number[]> {
  const end = Date.now() + ms;
  let left = await nginxOrphans(master);
  while (left.length > 0 && Date.now() < end) {
    await sleep(50);
    left = await nginxOrphans(master);
  }
  return left.map((o) => o.pid);
}

/**
 * End the orphans of `master`: SIGQUIT (a worker closes its listening sockets at once and
 * finishes the requests it is serving), SIGKILL for any still there after `graceMs`. Resolves
 * with the pids ended and those that outlived even SIGKILL (bounded: nothing waits forever).
 */
export async function endNginxOrphans(master: number, graceMs = 3000): Promise<{ ended: Orphan[]; left: number[] }> {
  const orphans = await nginxOrphans(master);
  if (orphans.length === 0) return { ended: [], left: [] };
  for (const o of orphans) signal(o.pid, 'SIGQUIT');
  const stubborn = await survivors(master, graceMs);
  for (const pid of stubborn) signal(pid, 'SIGKILL');
  return { ended: orphans, left: stubborn.length > 0 ? await survivors(master, 2000) : [] };
}
