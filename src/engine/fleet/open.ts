import type { ConnectOptions } from './connect.js';
import type { FleetStore } from './store.js';

/**
 * Open the fleet store. The etcd client (and gRPC under it) is loaded only here, on first use,
 * so `run -c` and every command that is not about a fleet never load it.
 */
export async function openStore(opts: ConnectOptions): Promise<FleetStore> {
  const { EtcdStore } = await import('./etcd.js');
  return new EtcdStore(opts);
}
