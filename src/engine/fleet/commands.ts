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
