import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from '../support/etcd.js';
import { waitFor } from '../support/docker.js';
import { ownedStateDir } from '../support/owned.js';
import { EtcdStore } from '../../src/engine/fleet/etcd.js';
import { FleetStateStore } from '../../src/engine/fleet/fleet-state-store.js';
import { FileStateStore, updateState } from '../../src/engine/runtime/state-store.js';
import { rmSync } from 'node:fs';

/**
 * The fleet-backed state store on a real etcd: three "hosts" (three clients, three file stores)
 * mutating the shared key at once all land (compare-and-swap, retried); a watch sees another
 * host's write; local keys stay in the file store; the store gone, a read answers the last value.
 */
const etcd = new EtcdCluster(24002, 1);
const FLEET = 'fleet-state';
const dirs = [0, 1, 2].map(() => ownedStateDir('fleet-state-store-'));
const clients: EtcdStore[] = [];
const stores: FleetStateStore[] = [];

beforeAll(async () => {
  await etcd.start();
  for (const d of dirs) {
    const c = new EtcdStore({ fleet: FLEET, endpoints: etcd.endpoints.split(','), dialTimeoutMs: 2000 });
    clients.push(c);
    stores.push(new FleetStateStore(c, new FileStateStore(d), new Set(['elb'])));
  }
}, 60_000);

afterAll(async () => {
  for (const s of stores) s.close();
  for (const c of clients) await c.close();
  await etcd.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Counter = { n: number; by: string[] };

describe('FleetStateStore', () => {
  it('30 read-change-writes from three hosts at once all land', async () => {
    const add = (s: FleetStateStore, who: string) => updateState<Counter>(s, 'elb', async (c) => {
      await new Promise((r) => setTimeout(r, 2)); // widen the read-to-write window
      return { n: (c?.n ?? 0) + 1, by: [...(c?.by ?? []), who] };
    });
    await Promise.all(stores.flatMap((s, i) => Array.from({ length: 10 }, (_, k) => add(s, `h${i}-${k}`))));
    const after = await stores[0]!.get<Counter>('elb');
    expect(after?.n).toBe(30);
    expect(new Set(after?.by).size).toBe(30);
  }, 30_000);

  it('a change on one host is seen by a watch on another; an unchanged value writes nothing', async () => {
    let seen = 0;
    const stop = stores[2]!.watch('elb', () => seen++);
    try {
      await waitFor(() => seen > 0, 'the first (level-triggered) call', 15_000);
      const before = seen;
      const rev = (await clients[0]!.get('state/elb'))!.modRevision;
      await updateState<Counter>(stores[1]!, 'elb', (c) => c); // no change: no write
      expect((await clients[0]!.get('state/elb'))!.modRevision).toBe(rev);
      await stores[0]!.put('elb', { n: 100, by: [] });
      await waitFor(() => seen > before, 'the watch on host 3 called', 15_000);
      expect((await stores[2]!.get<Counter>('elb'))?.n).toBe(100);
    } finally {
      stop();
    }
  });

  it('keys other than the fleet-wide ones stay in the host\'s own file store', async () => {
    await stores[0]!.put('mappings', { v: 1 });
    expect(await new FileStateStore(dirs[0]).get('mappings')).toEqual({ v: 1 });
    expect(await stores[1]!.get('mappings')).toBeUndefined();
    expect(await clients[0]!.get('state/mappings')).toBeNull();
  });

  it('the store gone: a read answers the last value; a write fails and changes nothing', async () => {
    await etcd.killMember('m1');
    expect((await stores[2]!.get<Counter>('elb'))?.n).toBe(100);
    await expect(updateState<Counter>(stores[2]!, 'elb', (c) => ({ n: (c?.n ?? 0) + 1, by: [] }))).rejects.toThrow(/unreachable/);
    expect((await stores[2]!.get<Counter>('elb'))?.n).toBe(100);
  }, 30_000);
});
