import { readFile } from 'node:fs/promises';
import { ExitCode, UserError } from '../errors.js';
import { connectOptions, type StoreFlags } from './connect.js';
import { openStore } from './open.js';
import { fleetStatus, type FleetStatus } from './status.js';
import type { FleetStore } from './store.js';
import { diffVersions, history, push, rollback, type PushResult } from './versions.js';

/** Entry points of the `cluster` commands: open the store, do one thing, close it. */
export async function withStore<T>(flags: StoreFlags, fn: (s: FleetStore) => Promise<T>, env: NodeJS.ProcessEnv = process.env): Promise<T> {
  const store = await openStore(connectOptions(flags, env));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function clusterPush(flags: StoreFlags, file: string, dryRun: boolean): Promise<PushResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check the -c/--config path', ExitCode.config);
  }
  return withStore(flags, (s) => push(s, { text, file, dryRun }));
}

export const clusterHistory = (flags: StoreFlags, limit: number) => withStore(flags, (s) => history(s, limit));
export const clusterDiff = (flags: StoreFlags, a: number, b?: number) => withStore(flags, (s) => diffVersions(s, a, b));
export const clusterRollback = (flags: StoreFlags, n: number | undefined, dryRun: boolean) => withStore(flags, (s) => rollback(s, n, { dryRun }));
export const clusterStatus = (flags: StoreFlags): Promise<FleetStatus> => withStore(flags, (s) => fleetStatus(s));

/**
 * `cluster status --watch`: the status every `intervalMs`, yielded only when it changed. A store
 * that stops answering is a status too (`{ error }`), not the end of the watch.
 */
export async function* watchClusterStatus(flags: StoreFlags, intervalMs: number, signal: AbortSignal, env: NodeJS.ProcessEnv = process.env): AsyncGenerator<FleetStatus | { error: string }> {
  if (!Number.isInteger(intervalMs) || intervalMs < 500 || intervalMs > 60_000) throw new UserError('--interval must be 1-60 seconds', 'the default is 2', ExitCode.usage);
  const store = await openStore(connectOptions(flags, env));
  try {
    let last = '';
    while (!signal.aborted) {
      let item: FleetStatus | { error: string };
      try {
        item = await fleetStatus(store);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        item = { error: err.message };
      }
      const key = JSON.stringify(item);
      if (key !== last) {
        last = key;
        yield item;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, intervalMs);
        signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  } finally {
    await store.close();
  }
}
