import { readFile } from 'node:fs/promises';
import { describeError, ExitCode, UserError } from '../errors.js';
import { HaproxyProcess } from '../frontends/haproxy/process.js';
import { defaultPaths } from '../render.js';
import { pidAlive } from '../runtime/pid.js';
import { assertBindsFree, showBind, type Bind } from '../runtime/ports.js';
import type { RunConfig } from './config.js';

/**
 * The daemon's side of the port-ownership check (runtime/ports.ts): which processes are its
 * proxies (their sockets are ours), and a SIGHUP that adds a proxy bind another process serves.
 */
export async function haproxyOwners(instance: string, env?: NodeJS.ProcessEnv): Promise<number[]> {
  const d = defaultPaths(instance, 'haproxy', env);
  const master = (await new HaproxyProcess({ config: d.output, masterSocket: d.masterSocket, pidFile: d.pidFile }).showProc())?.masterPid;
  return master ? [master] : [];
}

async function nginxOwners(instance: string, env?: NodeJS.ProcessEnv): Promise<number[]> {
  const pid = Number((await readFile(defaultPaths(instance, 'nginx', env).pidFile, 'utf8').catch(() => '')).trim());
  return pidAlive(pid) ? [pid] : [];
}

const proxyBinds = (c: RunConfig): Bind[] => c.services.flatMap((s) => [s.haproxy, s.nginx].filter((p) => p !== undefined).map((p) => ({ address: p.address, port: p.port })));

/**
 * A new config's HAProxy/nginx binds that the old one did not have must be free or our proxies':
 * refused (UserError) otherwise, before anything of the old config stops.
 */
export async function assertNewBindsFree(next: RunConfig, previous: RunConfig, env?: NodeJS.ProcessEnv): Promise<void> {
  const had = new Set(proxyBinds(previous).map(showBind));
  const added = proxyBinds(next).filter((b) => !had.has(showBind(b)));
  if (added.length === 0) return;
  const owners = [...(await haproxyOwners(next.proxies.haproxy.instance, env)), ...(await nginxOwners(next.proxies.nginx.instance, env))];
  await assertBindsFree(added, owners);
}

/** A listen that failed (metrics, the ELB API): what, where, and what to try. */
export function listenError(what: string, b: { address: string; port: number }, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException).code;
  return new UserError(`cannot listen for ${what} on ${b.address}:${b.port}: ${code ?? describeError(err)}`, 'pick another port in the config, or stop what uses it', code === 'EACCES' ? ExitCode.permission : ExitCode.unavailable);
}
