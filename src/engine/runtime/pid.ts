/**
 * Is a process with this pid running? Signal 0 checks without sending anything; EPERM means it
 * exists but belongs to someone else. Not a positive integer (an empty or garbled pid file): no.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
