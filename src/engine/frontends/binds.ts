import { assertBindsFree, configBinds } from '../runtime/ports.js';
import type { Applier } from './applier.js';

/**
 * Before a config with binds is staged: every port it binds is free or held by the proxy this
 * applier manages. Refused (UserError) otherwise, so nothing is reloaded: a reload whose bind
 * fails makes HAProxy pause the running workers' listeners while it retries, and with
 * SO_REUSEPORT a bind that "works" may be sharing another proxy's port.
 */
export async function assertOursToBind(applier: Applier, text: string): Promise<void> {
  const owners = applier.owners ? await applier.owners() : null;
  if (owners === null) return; // a custom reload command: its proxy is not ours to identify
  await assertBindsFree(configBinds(applier.proxy, text), owners);
}
