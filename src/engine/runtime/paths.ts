import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where elastic keeps things. Root: /var/lib/elastic (state) and /run/elastic (status sockets).
 * Otherwise the user's XDG dirs. ELASTIC_STATE_DIR / ELASTIC_RUN_DIR override both (tests, and
 * operators running several independent instances on one host).
 */
const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ELASTIC_STATE_DIR) return env.ELASTIC_STATE_DIR;
  if (isRoot()) return '/var/lib/elastic';
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'elastic');
}

export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ELASTIC_RUN_DIR) return env.ELASTIC_RUN_DIR;
  if (isRoot()) return '/run/elastic';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'elastic');
  return join(stateDir(env), 'run');
}
