/**
 * Stopping processes we started: TERM, then KILL after a grace period. Process groups are used
 * where we made one (the edge starts each instance as a group leader, so the app a node started
 * is stopped with it even when the node itself was killed with -9).
 */
export function signal(pid: number, sig: NodeJS.Signals, group = false): boolean {
  try {
    process.kill(group ? -pid : pid, sig);
    return true;
  } catch {
    return false; // already gone (ESRCH)
  }
}

export function isRunning(pid: number, group = false): boolean {
  return signal(pid, 0 as unknown as NodeJS.Signals, group);
}

/** TERM now; KILL whatever is left after `graceMs` (for a group: every member). */
export async function terminate(pid: number, graceMs: number, exited: Promise<unknown>, group = false): Promise<'term' | 'kill' | 'gone'> {
  if (!signal(pid, 'SIGTERM', group)) return 'gone';
  let leaderGone = false;
  void exited.then(() => {
    leaderGone = true;
  });
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    if (leaderGone && !(group && isRunning(pid, true))) return 'term';
  }
  signal(pid, 'SIGKILL', group);
  return 'kill';
}
