import { describeError } from '../errors.js';
import { connectOptions, type StoreFlags } from '../fleet/connect.js';
import { openStore } from '../fleet/open.js';
import { fleetStatus } from '../fleet/status.js';
import { adaptFleet, type TopFleet } from './fleet.js';

/**
 * `top --etcd --fleet`: top reads the fleet's status from the store itself. A read that fails
 * keeps the last rows with the error (the store going away is a state to show, not an exit).
 * The etcd client is loaded only here (dynamic import in openStore).
 */
export interface FleetReader {
  read(): Promise<TopFleet>;
  close(): Promise<void>;
}

export async function openFleetReader(flags: StoreFlags, env: NodeJS.ProcessEnv = process.env): Promise<FleetReader> {
  const store = await openStore(connectOptions(flags, env));
  let last: TopFleet | null = null;
  return {
    async read() {
      try {
        last = adaptFleet(await fleetStatus(store), 'etcd');
        return last!;
      } catch (err) {
        const error = describeError(err);
        return last ? { ...last, error } : { fleet: store.fleet, version: null, leader: null, converged: false, hosts: [], from: 'etcd', error };
      }
    },
    close: () => store.close(),
  };
}
