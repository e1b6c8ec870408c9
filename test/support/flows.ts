import { execa, type ResultPromise } from 'execa';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { rmSync } from 'node:fs';
import { elastic } from './cli.js';
import { docker, type TestContainers } from './docker.js';
import type { ClientNamespace } from './netns.js';

/**
 * Flows with chosen 5-tuples, for the consistent-hashing tests (issue 18): a client in a network
 * namespace connects from given source ports, asks `GET /id` (the test image answers its
 * hostname) and records which backend answered each tuple. HTTP/1.0: the server closes first, so
 * the client keeps no TIME_WAIT and the same tuple can be replayed at once (the LB's conntrack
 * entry, in TIME_WAIT, is replaced by a new SYN: a replay is a new DNAT decision).
 *
 *   const seen = await replay(ns, 25400, ports);          // source port -> hostname ('!error')
 *   const live = holdFlows(ns, 25400, ports);              // connected, request not sent yet
 *   await live.opened; const answers = await live.finish();
 */
const CLIENT = `
const net = require('node:net');
const [host, port, list, conc, tmo, hold] = process.argv.slice(1);
const ports = list.split(',').map(Number);
const out = {};
function one(lp) {
  return new Promise((resolve) => {
    let body = '';
    let sent = false;
    const s = net.connect({ host, port: Number(port), localPort: lp });
    const t = setTimeout(() => s.destroy(new Error('timeout')), Number(tmo));
    const send = () => { if (!sent) { sent = true; s.write('GET /id HTTP/1.0\\r\\n\\r\\n'); } };
    s.setEncoding('utf8');
    s.on('connect', () => { if (hold === '1') { clearTimeout(t); held.push({ s, send, t }); opened(); } else send(); });
    s.on('data', (c) => (body += c));
    s.on('end', () => { clearTimeout(t); out[lp] = body.split('\\r\\n\\r\\n')[1]?.trim() || '!empty'; s.end(); resolve(); });
    s.on('error', () => { clearTimeout(t); out[lp] = out[lp] || '!error'; resolve(); });
  });
}
const held = [];
let waiting = 0;
function opened() { if (held.length === waiting) process.stdout.write('opened\\n'); }
async function run(list) {
  let next = 0;
  const worker = async () => { while (next < list.length) await one(list[next++]); };
  await Promise.all(Array.from({ length: Math.min(Number(conc), list.length) }, worker));
}
if (hold === '1') {
  waiting = ports.length;
  const done = Promise.all(ports.map(one));
  process.on('SIGUSR2', () => { for (const h of held) { h.t = setTimeout(() => h.s.destroy(), Number(tmo)); h.send(); } });
  done.then(() => process.stdout.write(JSON.stringify(out) + '\\n'));
} else {
  run(ports).then(() => process.stdout.write(JSON.stringify(out)));
}
`;

/** Connect from each source port in turn (8 at a time), ask /id: source port -> hostname. */
export async function replay(ns: ClientNamespace, port: number, sourcePorts: readonly number[], host = ns.hostAddress): Promise<Map<number, string>> {
  const r = await ns.exec([process.execPath, '-e', CLIENT, host, String(port), sourcePorts.join(','), '8', '3000', '0'], { timeoutMs: 120_000 });
  if (r.exitCode !== 0) throw new Error(`client in ${ns.name} failed: ${r.stderr.trim()}`);
  return new Map(Object.entries(JSON.parse(r.stdout) as Record<string, string>).map(([k, v]) => [Number(k), v]));
}

/**
 * Open one connection per source port and hold it (no request yet); `finish()` sends the requests
 * on the open connections and resolves with the answers. The client is killed if the test ends first.
 */
export function holdFlows(ns: ClientNamespace, port: number, sourcePorts: readonly number[], host = ns.hostAddress) {
  const child: ResultPromise = execa('ip', ['netns', 'exec', ns.name, process.execPath, '-e', CLIENT, host, String(port), sourcePorts.join(','), '8', '5000', '1'], { reject: false, timeout: 120_000, stdin: 'ignore' });
  let out = '';
  let markOpened: () => void = () => {};
  const opened = new Promise<void>((resolve) => (markOpened = resolve));
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (c: string) => {
    out += c;
    if (out.startsWith('opened\n')) markOpened();
  });
  return {
    opened,
    async finish(): Promise<Map<number, string>> {
      child.kill('SIGUSR2');
      const r = await child;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) throw new Error(`held flows in ${ns.name}: no answer (exit ${r.exitCode}): ${String(r.stderr).trim()}`);
      return new Map(Object.entries(JSON.parse(line) as Record<string, string>).map(([k, v]) => [Number(k), v]));
    },
    kill: () => child.kill('SIGKILL'),
  };
}

/**
 * A Docker network of the test's own /24 (the test removes it; containers on it first). One a
 * killed run left on that subnet (labelled `elastic.test=t<pid>-...`, that pid gone) is removed
 * first, or the new one would be refused as overlapping.
 */
export async function testNetwork(name: string, subnet: string, runId: string, subnet6?: string): Promise<{ name: string; remove: () => Promise<void> }> {
  for (const n of await docker.listNetworks({ filters: JSON.stringify({ label: ['elastic.test'] }) })) {
    const pid = Number(/^t(\d+)-/.exec(n.Labels?.['elastic.test'] ?? '')?.[1]);
    if (n.IPAM?.Config?.some((c) => c.Subnet === subnet || c.Subnet === subnet6) && pid && !pidAlive(pid)) await docker.getNetwork(n.Id).remove().catch(() => {});
  }
  await docker.getNetwork(name).remove().catch(() => {});
  // subnet6: dual stack (an IPv6 subnet inside 2001:2::/48; dockerd needs no daemon.json change for it)
  const config = subnet6 ? [{ Subnet: subnet }, { Subnet: subnet6 }] : [{ Subnet: subnet }];
  await docker.createNetwork({ Name: name, Driver: 'bridge', Labels: { 'elastic.test': runId }, ...(subnet6 ? { EnableIPv6: true } : {}), IPAM: { Config: config } });
  return { name, remove: () => docker.getNetwork(name).remove().catch(() => {}) };
}

/** Fraction of the keys of `a` (restricted by `keep`) that map to the same value in `b`. */
export function sameShare(a: ReadonlyMap<number, string>, b: ReadonlyMap<number, string>, keep: (v: string) => boolean = () => true): { same: number; total: number } {
  let same = 0;
  let total = 0;
  for (const [k, v] of a) {
    if (!keep(v)) continue;
    total++;
    if (b.get(k) === v) same++;
  }
  return { same, total };
}

/**
 * Hold one connection per source port, run `change` (a backend's removal) while they are open,
 * then finish them: the answers (hostnames), in source-port order. The client is killed if the
 * change fails.
 */
export async function holdAcross(ns: ClientNamespace, port: number, sourcePorts: readonly number[], change: () => Promise<void>, host = ns.hostAddress): Promise<string[]> {
  const live = holdFlows(ns, port, sourcePorts, host);
  try {
    await Promise.race([live.opened, new Promise((_, reject) => setTimeout(() => reject(new Error('held flows did not open')), 20_000))]);
    await change();
    return [...(await live.finish()).values()];
  } finally {
    live.kill();
  }
}

/**
 * A UDP listener in a network namespace (the test image has no UDP server): every datagram it
 * receives is one line `<text> <sender address>` in `lines`. Kill `proc` when done.
 */
export async function udpListener(ns: ClientNamespace, port: number, family: 'udp4' | 'udp6' = 'udp4'): Promise<{ lines: string[]; proc: ResultPromise }> {
  const script = `const d = require('dgram').createSocket('${family}'); d.on('message', (m, from) => process.stdout.write(m + ' ' + from.address + '\\n')); d.bind(${port}, () => process.stdout.write('ready\\n'));`;
  const proc = execa('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { reject: false, stdin: 'ignore', timeout: 120_000 });
  const lines: string[] = [];
  proc.stdout!.setEncoding('utf8');
  // Bound before it returns: a datagram sent earlier is lost (a loaded CI host takes over a second to start node).
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`UDP listener in ${ns.name} did not bind in 20 s`));
    }, 20_000);
    proc.stdout!.on('data', (c: string) => {
      for (const l of c.split('\n').filter(Boolean)) {
        if (l === 'ready') {
          clearTimeout(timer);
          resolve();
        } else lines.push(l);
      }
    });
    void proc.then((r) => {
      clearTimeout(timer);
      reject(new Error(`UDP listener in ${ns.name} exited: ${String(r.stderr).trim()}`));
    });
  });
  await ready;
  return { lines, proc };
}

/** One UDP flow: 20 datagrams `<tag>0`..`<tag>19` from one source port, 50 ms apart; then 300 ms for them to land. */
export async function sendUdpFlow(ns: ClientNamespace, fromPort: number, host: string, port: number, tag: string): Promise<void> {
  const family = host.includes(':') ? 'udp6' : 'udp4';
  const r = await ns.exec([process.execPath, '-e', `const d = require('dgram').createSocket('${family}'); d.bind(${fromPort}, async () => { for (let i = 0; i < 20; i++) { d.send('${tag}' + i, ${port}, '${host}'); await new Promise((r) => setTimeout(r, 50)); } d.close(); });`]);
  if (r.exitCode !== 0) throw new Error(`UDP client in ${ns.name} failed: ${r.stderr.trim()}`);
  await new Promise((r) => setTimeout(r, 300));
}

/**
 * The end of a map-image test with its own network: every mapping of its state directory removed,
 * its containers, image tag and network, its client namespaces and its directories. Each step runs
 * even when an earlier one failed.
 */
export async function tearDownMapimg(o: { env: NodeJS.ProcessEnv; tc: TestContainers; image: string; net?: { remove: () => Promise<void> }; namespaces: readonly ClientNamespace[]; dirs: readonly string[] }): Promise<void> {
  const stopped = await elastic(['map-image', 'stop', '--all'], { env: o.env }).then((r) => r.exitCode === 0, () => false);
  // A state directory whose rules could not be removed stays: the next run's sweep (owned.ts) finds
  // its kernel namespace through it; removed, its table would be an orphan holding the port.
  if (!stopped) process.stderr.write(`map-image stop --all failed: ${o.env.ELASTIC_STATE_DIR} kept for the sweep\n`);
  await o.tc.cleanup().catch(() => {});
  await docker.getImage(o.image).remove().catch(() => {});
  await o.net?.remove();
  for (const ns of o.namespaces) await ns.cleanup().catch(() => {});
  for (const d of o.dirs) if (stopped || d !== o.env.ELASTIC_STATE_DIR) rmSync(d, { recursive: true, force: true });
}
