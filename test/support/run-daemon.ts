import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { defaultPaths } from '../../src/engine/render.js';

/**
 * Tear down an `elastic run` a test started: SIGTERM to its pid (if it still runs), then the
 * HAProxy it left serving (run-<name>, stopped by its own pidfile), then the test's directories.
 */
export async function stopRunDaemon(child: ChildProcess | null, name: string, env: NodeJS.ProcessEnv, dirs: readonly string[]): Promise<void> {
  if (child?.pid && child.exitCode === null && child.signalCode === null) {
    process.kill(child.pid, 'SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  const d = defaultPaths(`run-${name}`, 'haproxy', env);
  await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).stop().catch(() => {});
  for (const p of dirs) rmSync(p, { recursive: true, force: true });
}
