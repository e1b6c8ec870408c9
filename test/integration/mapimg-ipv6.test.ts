import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { BIN, elastic } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE, TestContainers, waitFor } from '../support/docker.js';
import { LineReader } from '../support/lines.js';
import { drainBackend, type ListResult } from '../../src/engine/map-image.js';
import { FileStateStore } from '../../src/engine/runtime/state-store.js';
import { holdAcross, sendUdpFlow, tearDownMapimg, testNetwork, udpListener } from '../support/flows.js';
import { createClientNamespace, type ClientNamespace } from '../support/netns.js';
import { ownedStateDir } from '../support/owned.js';
import { elasticTraces } from '../support/ruleset.js';

/**
 * Issue 18, IPv6 / dual stack. Three containers on a dual-stack Docker network of the test's own
 * (198.18.92.0/24 + 2001:2:0:92::/64); clients in network namespaces with both families
 * (198.19.92.0/24, 2001:2:1:92::/64) reach them through the mapping on the host's veth address,
 * as outside clients do (prerouting, forwarded). The nft data plane programs an `ip6` table beside
 * the `ip` one; iptables refuses IPv6 with one line and serves a dual-stack container on IPv4.
 */
const tc = new TestContainers();
const image = `mapimg-ipv6-${tc.runId}:1`;
const none = `mapimg-ipv6-none-${process.pid}:1`;
const stateDir = ownedStateDir('mapimg-ipv6-state-');
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-ipv6-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const PORT = 28101;
let net: { name: string; remove: () => Promise<void> } | undefined;
const clients: ClientNamespace[] = [];
const containers: Array<{ address: string; address6: string; host: string }> = [];
const url6 = (ns: ClientNamespace, port = PORT) => `http://[${ns.hostAddress6}]:${port}/id`;
const stop = async () => expect((await elastic(['map-image', 'stop', '--all'], { env })).exitCode).toBe(0);

beforeAll(async () => {
  await requireDocker();
  await docker.getImage(TEST_IMAGE).tag({ repo: `mapimg-ipv6-${tc.runId}`, tag: '1' });
  net = await testNetwork(`mapimg-ipv6-${process.pid}`, '198.18.92.0/24', tc.runId, '2001:2:0:92::/64');
  for (let i = 0; i < 3; i++) {
    const info = await (await tc.run({ image, network: net.name })).inspect();
    const n = info.NetworkSettings.Networks[net.name]!;
    containers.push({ address: n.IPAddress, address6: n.GlobalIPv6Address, host: info.Config.Hostname });
  }
  for (let i = 0; i < 3; i++) clients.push(await createClientNamespace({ name: `mg6-c${i}`, prefix: '198.19.92', index: i, prefix6: '2001:2:1:92' }));
}, 120_000);

afterAll(() => tearDownMapimg({ env, tc, image, net, namespaces: clients, dirs: [stateDir, runDir] }));

describe('map-image IPv6 on nft', () => {
  it('dual stack: containers of an IPv6-enabled network are reachable over IPv4 and IPv6 through the same mapping (hash)', async () => {
    expect(containers.every((c) => c.address6.startsWith('2001:2:0:92::')), JSON.stringify(containers)).toBe(true);
    const r = await elastic(['map-image', String(PORT), image, '80', '--dataplane', 'nft', '--json'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const view = JSON.parse(String(r.stdout)) as { mapping: { spread: string; backends: Array<{ endpoint: string }> } };
    expect(view.mapping.spread).toBe('hash');
    expect(view.mapping.backends.map((b) => b.endpoint).sort()).toEqual(containers.flatMap((c) => [`${c.address}:80`, `[${c.address6}]:80`]).sort());
    const ns = clients[0]!;
    const v6 = await ns.httpSpread(url6(ns), 300, { concurrency: 8, timeoutMs: 3000 });
    const v4 = await ns.httpSpread(`http://${ns.hostAddress}:${PORT}/id`, 300, { concurrency: 8, timeoutMs: 3000 });
    const hosts = containers.map((c) => c.host).sort();
    expect([...v6.keys()].sort(), JSON.stringify([...v6])).toEqual(hosts);
    expect([...v4.keys()].sort(), JSON.stringify([...v4])).toEqual(hosts);
    // The ip6 table's per-backend counters reach `list`.
    const list = JSON.parse(String((await elastic(['map-image', 'list', '--json'], { env })).stdout)) as { mappings: Array<{ backends: Array<{ address: string; packets: number | null }> }> };
    const v6packets = list.mappings[0]!.backends.filter((b) => b.address.includes(':')).reduce((a, b) => a + (b.packets ?? 0), 0);
    expect(v6packets).toBeGreaterThanOrEqual(300);
  }, 120_000);

  it('weights for IPv6 backends (--backend [ADDR]:PORT@W, hash): 3:1 within 10% over 3,000 connections, weight 0 gets none', async () => {
    await stop();
    const [a, b, c] = containers as [(typeof containers)[0], (typeof containers)[0], (typeof containers)[0]];
    const r = await elastic(['map-image', String(PORT), none, '80', '--dataplane', 'nft', '--spread', 'hash', '--backend', `[${a.address6}]:80@3`, '--backend', `[${b.address6}]:80@1`, '--backend', `[${c.address6}]:80@0`], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const total = new Map<string, number>();
    for (const m of await Promise.all(clients.map((ns) => ns.httpSpread(url6(ns), 1000, { concurrency: 8, timeoutMs: 3000 })))) for (const [k, v] of m) total.set(k, (total.get(k) ?? 0) + v);
    expect(total.get('!error'), JSON.stringify([...total])).toBeUndefined();
    const share = (h: string) => (total.get(h) ?? 0) / 3000;
    expect(Math.abs(share(a.host) - 0.75) / 0.75, `weight 3: ${share(a.host)}`).toBeLessThanOrEqual(0.1);
    expect(Math.abs(share(b.host) - 0.25) / 0.25, `weight 1: ${share(b.host)}`).toBeLessThanOrEqual(0.1);
    expect(total.get(c.host), 'weight 0 gets no new connection').toBeUndefined();
  }, 180_000);

  it('--spread random and --address with an IPv6 address: only that address is mapped', async () => {
    await stop();
    const [ns, other] = [clients[0]!, clients[1]!];
    const r = await elastic(['map-image', String(PORT), image, '80', '--dataplane', 'nft', '--spread', 'random', '--address', ns.hostAddress6!], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const got = await ns.httpSpread(url6(ns), 200, { concurrency: 8, timeoutMs: 3000 });
    expect([...got.keys()].sort(), JSON.stringify([...got])).toEqual(containers.map((c) => c.host).sort());
    // Another address of the host (the other namespace's veth, IPv6 or IPv4) is not mapped: nothing listens there.
    expect([...(await other.httpSpread(url6(other), 5, { concurrency: 1, timeoutMs: 1000 }))]).toEqual([['!error', 5]]);
    expect([...(await ns.httpSpread(`http://${ns.hostAddress}:${PORT}/id`, 5, { concurrency: 1, timeoutMs: 1000 }))]).toEqual([['!error', 5]]);
  }, 120_000);

  it('graceful removal of an IPv6 backend: its held connections finish on it, new connections avoid it at once', async () => {
    await stop();
    const [a, b] = [containers[0]!, containers[1]!];
    const map = (backends: Array<{ address6: string }>) => elastic(['map-image', String(PORT), none, '80', '--dataplane', 'nft', ...backends.flatMap((x) => ['--backend', `[${x.address6}]:80`])], { env });
    expect((await map([a, b])).exitCode).toBe(0);
    const ns = clients[0]!;
    const answers = await holdAcross(ns, PORT, Array.from({ length: 20 }, (_, i) => 28150 + i), async () => {
      const r = await map([b]);
      expect(r.exitCode, String(r.stderr)).toBe(0);
    }, ns.hostAddress6);
    expect(answers.filter((h) => h !== a.host && h !== b.host), 'every held connection answered').toEqual([]);
    expect(answers.filter((h) => h === a.host).length, 'some held connections were on the removed backend').toBeGreaterThan(0);
    expect([...(await ns.httpSpread(url6(ns), 50, { concurrency: 4, timeoutMs: 3000 }))]).toEqual([[b.host, 50]]);
  }, 120_000);

  it('client-ip affinity for IPv6 clients: one backend for 30 connections; its removal moves the client at once', async () => {
    await stop();
    const map = (backends: Array<{ address6: string }>) =>
      elastic(['map-image', String(PORT), none, '80', '--dataplane', 'nft', '--affinity', 'client-ip', '--affinity-timeout', '1h', ...backends.flatMap((x) => ['--backend', `[${x.address6}]:80`])], { env });
    expect((await map(containers)).exitCode).toBe(0);
    const ns = clients[1]!;
    const first = await ns.httpSpread(url6(ns), 30, { concurrency: 1, timeoutMs: 3000 });
    expect(first.size, JSON.stringify([...first])).toBe(1);
    const [kept] = [...first.keys()];
    const r = await map(containers.filter((c) => c.host !== kept));
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const after = await ns.httpSpread(url6(ns), 20, { concurrency: 1, timeoutMs: 3000 });
    expect(after.size, JSON.stringify([...after])).toBe(1);
    expect(after.has(kept!)).toBe(false);
    expect(after.has('!error')).toBe(false);
  }, 120_000);
});

describe('the drain contract with a dual-stack container', () => {
  it('draining by its IPv4 address (as deploy does) takes its IPv6 endpoint out too; remaining counts its live IPv6 flows', async () => {
    await stop();
    const one = `mapimg-ipv6-one-${tc.runId}`;
    await docker.getImage(TEST_IMAGE).tag({ repo: one, tag: '1' });
    let ctr: Awaited<ReturnType<typeof tc.run>> | undefined;
    try {
      ctr = await tc.run({ image: `${one}:1`, network: net!.name });
      const info = await ctr.inspect();
      const c = { address: info.NetworkSettings.Networks[net!.name]!.IPAddress, host: info.Config.Hostname };
      expect((await elastic(['map-image', String(PORT), `${one}:1`, '80', '--dataplane', 'nft'], { env })).exitCode).toBe(0);
      const ns = clients[0]!;
      const answers = await holdAcross(ns, PORT, [28190, 28191, 28192], async () => {
        const r = await drainBackend({ address: c.address, port: 80 }, { timeoutMs: 800, pollMs: 100, store: new FileStateStore(stateDir), env: { ...process.env, ...env } });
        expect(r).toMatchObject({ drained: false, remaining: 3, mappings: [`tcp-${PORT}`] });
        const listed = JSON.parse(String((await elastic(['map-image', 'list', '--json'], { env })).stdout)) as ListResult;
        expect(listed.mappings[0]!.backends.map((b) => [b.endpoint, b.draining])).toEqual([[`${c.address}:80`, true], [`[${info.NetworkSettings.Networks[net!.name]!.GlobalIPv6Address}]:80`, true]]);
        // No backend takes new connections now: a new IPv6 connection is not served.
        expect([...(await ns.httpSpread(url6(ns), 2, { concurrency: 1, timeoutMs: 1000 }))]).toEqual([['!error', 2]]);
      }, ns.hostAddress6);
      expect(answers, 'the held IPv6 connections finish on the drained container').toEqual([c.host, c.host, c.host]);
    } finally {
      await ctr?.remove({ force: true }).catch(() => {});
      await docker.getImage(`${one}:1`).remove().catch(() => {});
    }
  }, 120_000);
});

describe('map-image IPv6 UDP', () => {
  const UDP_PORT = 28102;
  const servers: ResultPromise[] = [];
  const backends: ClientNamespace[] = [];

  afterAll(async () => {
    for (const p of servers) p.kill('SIGKILL');
    for (const ns of backends) await ns.cleanup();
  });

  it('after removal no datagram of a flow reaches the removed IPv6 backend (conntrack -f ipv6 purge); backends see the client IPv6 address', async () => {
    await stop();
    const received = new Map<string, string[]>();
    for (const i of [5, 6]) {
      const ns = await createClientNamespace({ name: `mg6-u${i}`, prefix: '198.19.92', index: i, prefix6: '2001:2:1:92' });
      backends.push(ns);
      const { lines, proc } = await udpListener(ns, 28180, 'udp6');
      received.set(ns.clientAddress6!, lines);
      servers.push(proc);
    }
    const addrs = [...received.keys()];
    const map = (list: string[]) => elastic(['map-image', String(UDP_PORT), none, '28180', '--protocol', 'udp', '--dataplane', 'nft', ...list.flatMap((x) => ['--backend', `[${x}]:28180`])], { env });
    expect((await map(addrs)).exitCode).toBe(0);
    const ns = clients[0]!;
    const send = (tag: string) => sendUdpFlow(ns, 28170, ns.hostAddress6!, UDP_PORT, tag);
    await send('before');
    const got = (addr: string, tag: string) => received.get(addr)!.filter((l) => l.startsWith(tag)).length;
    onTestFailed(async () => {
      const ct = await execa('conntrack', ['-L', '-f', 'ipv6', '-p', 'udp', '--orig-port-dst', String(UDP_PORT)], { reject: false });
      console.error(`received: ${JSON.stringify([...received])}\nconntrack: ${ct.stdout}`);
    });
    const first = addrs.find((x) => got(x, 'before') > 0);
    expect(first, 'a backend received the first flow').toBeDefined();
    const other = addrs.find((x) => x !== first)!;
    expect([got(first!, 'before'), got(other, 'before')]).toEqual([20, 0]);
    expect((await map([other])).exitCode).toBe(0);
    await send('after');
    expect([got(first!, 'after'), got(other, 'after')]).toEqual([0, 20]);
    const datagrams = [...received.values()].flat().filter((l) => /^(before|after)\d/.test(l));
    expect(datagrams).toHaveLength(40);
    expect(new Set(datagrams.map((l) => l.split(' ')[1]))).toEqual(new Set([ns.clientAddress6]));
  }, 120_000);
});

describe('map-image --watch with dual-stack containers', () => {
  const children: ResultPromise[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  });
  const listed = async () => ((JSON.parse(String((await elastic(['map-image', 'list', '--json'], { env })).stdout)) as ListResult).mappings[0]?.backends ?? []);

  it('a container that starts is served over IPv6 too; one being stopped leaves new IPv6 connections at its kill event', async () => {
    await stop();
    const watch = execa(process.execPath, [BIN, 'map-image', String(PORT), image, '80', '--watch', '--dataplane', 'nft'], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
    children.push(watch);
    const err = new LineReader(watch.stderr!);
    onTestFailed(() => console.error(`map-image stderr:\n${err.lines.join('\n')}`));
    await waitFor(async () => (await listed()).length === 6, 'three dual-stack containers: six endpoints', 20_000, 200);
    const d = await tc.run({ image, network: net!.name });
    const info = await d.inspect();
    const [host, v6] = [info.Config.Hostname, info.NetworkSettings.Networks[net!.name]!.GlobalIPv6Address];
    await waitFor(async () => (await listed()).some((b) => b.address === v6), 'the new container\'s IPv6 endpoint', 20_000, 200);
    const ns = clients[2]!;
    expect((await ns.httpSpread(url6(ns), 200, { concurrency: 8, timeoutMs: 3000 })).get(host) ?? 0).toBeGreaterThan(0);
    const stopping = docker.getContainer(d.id).stop({ t: 20 });
    try {
      await waitFor(async () => (await listed()).filter((b) => b.id === `docker:${d.id.slice(0, 12)}`).every((b) => b.draining), 'both endpoints draining', 10_000, 100);
      const after = await ns.httpSpread(url6(ns), 60, { concurrency: 4, timeoutMs: 3000 });
      expect((await d.inspect()).State.Running, 'it still runs: the test measured the grace period').toBe(true);
      expect(after.get(host), JSON.stringify([...after])).toBeUndefined();
      expect(after.get('!error')).toBeUndefined();
    } finally {
      await stopping;
    }
    await waitFor(async () => (await listed()).length === 6, 'gone at die', 20_000, 200);
    watch.kill('SIGTERM');
    await watch;
  }, 120_000);
});

describe('map-image IPv6 on iptables', () => {
  it('an IPv6 --backend or --address is refused with one line; a dual-stack container is served on IPv4 only', async () => {
    await stop();
    const ns = clients[2]!;
    for (const args of [['--backend', `[${containers[0]!.address6}]:80`], ['--address', ns.hostAddress6!]]) {
      const r = await elastic(['map-image', String(PORT), image, '80', '--dataplane', 'iptables', ...args], { env });
      expect(r.exitCode, String(r.stderr)).toBe(2);
      expect(String(r.stderr)).toMatch(/needs the nft data plane/);
      expect(String(r.stderr).trim().split('\n')).toHaveLength(1);
    }
    const r = await elastic(['map-image', String(PORT), image, '80', '--dataplane', 'iptables', '--json'], { env });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const view = JSON.parse(String(r.stdout)) as { mapping: { backends: Array<{ address: string }> } };
    const v4 = await ns.httpSpread(`http://${ns.hostAddress}:${PORT}/id`, 100, { concurrency: 4, timeoutMs: 3000 });
    expect([...v4.keys()].sort(), JSON.stringify([...v4])).toEqual(containers.map((c) => c.host).sort());
    expect([...(await ns.httpSpread(url6(ns), 3, { concurrency: 1, timeoutMs: 1000 }))]).toEqual([['!error', 3]]);
    expect(view.mapping.backends.map((b) => b.address).sort()).toEqual(containers.map((c) => c.address).sort());
    await stop();
    expect(await elasticTraces(namespaceFor(stateDir))).toEqual([]);
  }, 120_000);
});
