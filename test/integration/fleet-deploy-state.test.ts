import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from '../support/etcd.js';
import { ownedStateDir } from '../support/owned.js';
import { loadState, saveState, stateKey, type DeployState } from '../../src/engine/deploy/state.js';
import { EtcdStore } from '../../src/engine/fleet/etcd.js';
import { Leadership } from '../../src/engine/fleet/election.js';
import { FleetStateStore } from '../../src/engine/fleet/fleet-state-store.js';
import { Keys } from '../../src/engine/fleet/store.js';
import { nullLogger } from '../../src/engine/runtime/logger.js';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';

/**
 * Deploy state in a fleet (real etcd): the `deploy-<service>` keys live in the fleet store, so
 * every host reads the same (a new leader resumes from it, every balancer leaves gating replicas
 * out); only the leader writes them, each write fenced by its leadership: a host whose leadership
 * is gone has its write refused and nothing changes in the store.
 */
const etcd = new EtcdCluster(25640, 1);
const FLEET = 'fleet-deploy-state';
const dirs = [0, 1].map(() => ownedStateDir('fleet-deploy-state-'));
const clients: EtcdStore[] = [];

const isDeploy = (k: string) => k.startsWith(stateKey(''));
function hostStore(i: number, lead: Leadership): FleetStateStore {
  return new FleetStateStore(clients[i]!, new FileStateStore(dirs[i]!), (k) => k === 'elb' || isDeploy(k), nullLogger, { keys: isDeploy, write: (puts) => lead.fencedPut(puts) });
}
const state = (replicas: number): Omit<DeployState, 'updated'> => ({
  v: 1,
  service: 'fds',
  current: { revision: 'r1', imageId: 'sha256:x', since: new Date().toISOString(), spec: { service: 'fds', replicas } as unknown as DeployState['current']['spec'] },
  phase: 'rolling',
  gating: ['0123456789ab'],
});

beforeAll(async () => {
  await etcd.start();
  for (let i = 0; i < 2; i++) clients.push(new EtcdStore({ fleet: FLEET, endpoints: etcd.endpoints.split(','), dialTimeoutMs: 2000 }));
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.close();
  await etcd.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('deploy state in the fleet store', () => {
  it('the leader writes it (fenced), every host reads it; a deposed leader is refused and nothing is written', async () => {
    const a = new Leadership(clients[0]!, 'a', nullLogger, () => {});
    const b = new Leadership(clients[1]!, 'b', nullLogger, () => {});
    const sa = hostStore(0, a);
    const sb = hostStore(1, b);
    const la = await clients[0]!.lease(2);
    await a.campaign(la, true);
    expect(a.leading).toBe(true);
    await saveState(sa, state(2));
    // In the store, not in a host's files: the other host reads it.
    expect((await loadState(sb, 'fds'))?.gating).toEqual(['0123456789ab']);
    expect(await new FileStateStore(dirs[0]!).get(stateKey('fds'))).toBeUndefined();
    expect(await sb.keys()).toContain(stateKey('fds'));
    // A host that does not lead cannot write it.
    await expect(saveState(sb, state(5))).rejects.toThrow(/does not lead/);
    // a's lease goes (as when paused past its TTL), b is elected; a still believes it leads.
    await la.revoke();
    const lb = await clients[1]!.lease(5);
    await b.campaign(lb, true);
    expect(b.leading).toBe(true);
    const rev = (await clients[0]!.get(Keys.state(stateKey('fds'))))!.modRevision;
    await expect(saveState(sa, state(9))).rejects.toThrow(/does not lead/);
    expect(a.leading).toBe(false);
    expect((await clients[0]!.get(Keys.state(stateKey('fds'))))!.modRevision).toBe(rev);
    expect((await loadState(sb, 'fds'))?.current.spec.replicas).toBe(2);
    // The new leader carries on from it.
    await saveState(sb, { ...state(3), gating: [] });
    expect((await loadState(sa, 'fds'))?.current.spec.replicas).toBe(3);
    // Fleet keys other than deploy state are not fenced (the ELB API's, written by any host).
    await sa.put('elb', { v: 1, loadBalancers: [] });
    await lb.revoke();
  }, 30_000);
});
