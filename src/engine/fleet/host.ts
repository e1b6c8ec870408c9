import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { describeError, ExitCode, UserError } from '../errors.js';
import type { Logger } from '../runtime/logger.js';
import { RunDaemon } from '../run/daemon.js';
import { stateKey } from '../deploy/state.js';
import { ELB_STATE_KEY } from '../run/elb/model.js';
import { stateDir } from '../runtime/paths.js';
import { FileStateStore } from '../runtime/state-store.js';
import { FleetAgent } from './agent.js';
import { connectOptions, type StoreFlags } from './connect.js';
import { FleetStateStore } from './fleet-state-store.js';
import { openStore } from './open.js';
import { fleetStatus, type FleetStatus } from './status.js';
import { checkName, type FleetStore } from './store.js';

/**
 * `elastic run --etcd URL --fleet NAME --host NAME`: the same daemon as `run -c`, whose config
 * source is the fleet store. SIGHUP re-reads the store (as it re-reads the file for `run -c`).
 */
export interface FleetHostOptions extends StoreFlags {
  readonly host: string;
  readonly addresses?: readonly string[];
  readonly leaseTtl: number;
  readonly logger: Logger;
  readonly env?: NodeJS.ProcessEnv;
}

export async function runFleetHost(opts: FleetHostOptions, signal: AbortSignal, onStarted?: (reload: () => void) => void): Promise<void> {
  checkName('host', opts.host);
  if (opts.leaseTtl < 2 || opts.leaseTtl > 60) throw new UserError('--lease-ttl must be 2-60 seconds', 'the default is 10', ExitCode.usage);
  for (const a of opts.addresses ?? []) if (!isIP(a)) throw new UserError(`--address ${JSON.stringify(a.slice(0, 64))} is not an IP address`, 'e.g. --address 198.18.0.5', ExitCode.usage);
  const store = await openStore(connectOptions(opts, opts.env));
  const agent = new FleetAgent({ store, host: opts.host, addresses: opts.addresses?.length ? opts.addresses : localAddresses(), leaseTtl: opts.leaseTtl, logger: opts.logger, env: opts.env });
  // The ELB API's state and the deploy state are the fleet's (every host serves the one and
  // follows the other's gating; a new leader resumes a rollout from it); the rest stays this
  // host's own. Only the leader writes deploy state, each write fenced by its leadership.
  const isDeploy = (k: string) => k.startsWith(stateKey(''));
  const local = new FileStateStore(stateDir(opts.env), { recover: true, logger: opts.logger.child('state') });
  const state = new FleetStateStore(store, local, (k) => k === ELB_STATE_KEY || isDeploy(k), opts.logger, { keys: isDeploy, write: (puts) => agent.fenced(puts) });
  let daemon: RunDaemon | null = null;
  try {
    await agent.init();
    const d = new RunDaemon({ file: `etcd:/elastic/${store.fleet}/current`, source: agent, singleton: agent.singleton, logger: opts.logger, env: opts.env, store: state, onElbRefused: (p) => agent.elbRefused(p), statusFleet: cachedStatus(store) });
    await d.start(); // a failed start stops itself
    daemon = d;
    await agent.attach(d);
    opts.logger.info('fleet host running', { fleet: store.fleet, host: opts.host, version: agent.appliedVersion });
    onStarted?.(() => void agent.sync('SIGHUP'));
    if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
  } finally {
    await agent.stop();
    state.close();
    await daemon?.stop();
    await store.close();
  }
}

/**
 * The fleet's status for this host's status socket (top's Hosts view): read from the store at
 * most once a second however many clients ask. A snapshot never waits on the store more than
 * `waitMs` (a store without quorum takes the dial timeout to fail, and `top` must keep seeing
 * the daemon): the last good status with the store's error, or just the error, instead.
 */
function cachedStatus(store: FleetStore, maxAgeMs = 1000, waitMs = 500): () => Promise<FleetStatus | { fleet: string; error: string }> {
  let last: { at: number; p: Promise<FleetStatus> } | null = null;
  let good: FleetStatus | null = null;
  let error: string | null = null;
  return async () => {
    if (!last || Date.now() - last.at > maxAgeMs) {
      const p = fleetStatus(store);
      last = { at: Date.now(), p };
      p.then(
        (s) => ((good = s), (error = null)),
        (err: unknown) => ((last = null), (error = describeError(err))), // a failed read is not cached
      );
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), waitMs)));
    const s = await Promise.race([last.p.catch(() => null), late]).finally(() => clearTimeout(timer));
    if (s) return s;
    const why = error ?? `the store did not answer within ${waitMs} ms`;
    return good ? { ...good, error: why } : { fleet: store.fleet, error: why };
  };
}

function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && i.family === 'IPv4' && !i.internal)
    .map((i) => i!.address)
    .slice(0, 16);
}
