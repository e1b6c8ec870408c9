import { execa } from 'execa';

/**
 * Network namespaces for tests: a "client host" that reaches the root namespace (the LB host)
 * over a veth pair, the way an outside client would (its packets enter through PREROUTING and
 * are forwarded, unlike local clients that go through OUTPUT).
 *
 *   client namespace                 root namespace
 *   <ns>-c  <prefix>.<n+2>/30  <-->  <ns>-h  <prefix>.<n+1>/30  (the address clients connect to)
 *
 * Every feature picks its own /24 (map-image: 198.19.3.0/24) and names namespaces after itself,
 * so parallel test runs do not collide. `cleanup()` removes the namespace and the veth (deleting
 * one end removes both); call it in afterAll/finally. Only addresses in 198.18.0.0/15 are used.
 *
 *   const ns = await createClientNamespace({ name: 'mapimg-a', prefix: '198.19.3', index: 0 });
 *   await ns.exec(['busybox', 'wget', '-qO-', `http://${ns.hostAddress}:18300/id`]);
 *   const counts = await ns.httpSpread(`http://${ns.hostAddress}:18300/id`, 300);
 *   await ns.cleanup();
 */
export interface ClientNamespace {
  readonly name: string;
  /** The root-namespace end: the address clients in the namespace connect to. */
  readonly hostAddress: string;
  /** The client's own address. */
  readonly clientAddress: string;
  /** With `prefix6`: the IPv6 addresses of the two ends (host, client). */
  readonly hostAddress6?: string;
  readonly clientAddress6?: string;
  readonly hostIf: string;
  exec(cmd: string[], opts?: { timeoutMs?: number; input?: string }): Promise<{ stdout: string; stderr: string; exitCode: number }>;
  /** `count` HTTP GETs, each on a new connection, `concurrency` at a time: body -> how many times. */
  httpSpread(url: string, count: number, opts?: { concurrency?: number; timeoutMs?: number }): Promise<Map<string, number>>;
  cleanup(): Promise<void>;
}

export interface NamespaceOptions {
  /** Namespace name; also the veth names' stem (at most 12 characters: interface names are 15). */
  name: string;
  /** First three octets of the feature's /24, e.g. `198.19.3`. */
  prefix: string;
  /** Which /30 inside the /24 (0..63). */
  index?: number;
  /**
   * IPv6 too (dual stack): the first four groups of a /64 inside 2001:2:1::/48, e.g. `2001:2:1:92`;
   * the ends get `<prefix6>::<n+1>/126` and `::<n+2>` (hex), the client a default route via the host.
   */
  prefix6?: string;
}

async function run(cmd: string[], timeoutMs = 30_000) {
  const r = await execa(cmd[0]!, cmd.slice(1), { reject: false, timeout: timeoutMs, stdin: 'ignore' });
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? 1 };
}

async function must(cmd: string[]): Promise<void> {
  const r = await run(cmd);
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr.trim()}`);
}

/** Remove a namespace and its veth if a previous (crashed) run left them. */
export async function removeNamespace(name: string): Promise<void> {
  await run(['ip', 'link', 'del', `${name}-h`]);
  await run(['ip', 'netns', 'del', name]);
}

export async function createClientNamespace(opts: NamespaceOptions): Promise<ClientNamespace> {
  const { name, prefix } = opts;
  if (!/^[a-z0-9-]{1,12}$/.test(name)) throw new Error('namespace name: 1-12 of [a-z0-9-]');
  if (!/^198\.(18|19)\.\d{1,3}$/.test(prefix)) throw new Error('test networks live in 198.18.0.0/15');
  const base = (opts.index ?? 0) * 4;
  const hostAddress = `${prefix}.${base + 1}`;
  const clientAddress = `${prefix}.${base + 2}`;
  if (opts.prefix6 !== undefined && !/^2001:2:1:[0-9a-f]{1,4}$/.test(opts.prefix6)) throw new Error('test IPv6 networks live in 2001:2:1::/48');
  const hostAddress6 = opts.prefix6 ? `${opts.prefix6}::${(base + 1).toString(16)}` : undefined;
  const clientAddress6 = opts.prefix6 ? `${opts.prefix6}::${(base + 2).toString(16)}` : undefined;
  const hostIf = `${name}-h`;
  const nsIf = `${name}-c`;
  await removeNamespace(name);
  try {
    await must(['ip', 'netns', 'add', name]);
    await must(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await must(['ip', 'link', 'set', nsIf, 'netns', name]);
    if (opts.prefix6 !== undefined) {
      // No duplicate address detection on either end, link-local included: a tentative link-local
      // address cannot send neighbor solicitations, so the first second or two of forwarded IPv6
      // (a UDP flow to a namespace made just before) waits in, or is dropped from, the neighbor queue.
      await must(['sysctl', '-qw', `net.ipv6.conf.${hostIf}.accept_dad=0`]);
      await must(['ip', 'netns', 'exec', name, 'sysctl', '-qw', `net.ipv6.conf.${nsIf}.accept_dad=0`]);
    }
    await must(['ip', 'addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    await must(['ip', 'link', 'set', hostIf, 'up']);
    const inNs = (cmd: string[]) => must(['ip', 'netns', 'exec', name, ...cmd]);
    await inNs(['ip', 'addr', 'add', `${clientAddress}/30`, 'dev', nsIf]);
    await inNs(['ip', 'link', 'set', nsIf, 'up']);
    await inNs(['ip', 'link', 'set', 'lo', 'up']);
    await inNs(['ip', 'route', 'add', 'default', 'via', hostAddress]);
    if (hostAddress6 && clientAddress6) {
      // nodad: usable at once (duplicate address detection would hold them tentative for a second or two)
      await must(['ip', '-6', 'addr', 'add', `${hostAddress6}/126`, 'dev', hostIf, 'nodad']);
      await inNs(['ip', '-6', 'addr', 'add', `${clientAddress6}/126`, 'dev', nsIf, 'nodad']);
      await inNs(['ip', '-6', 'route', 'add', 'default', 'via', hostAddress6]);
    }
  } catch (err) {
    await removeNamespace(name);
    throw err;
  }
  const exec: ClientNamespace['exec'] = async (cmd, o = {}) => {
    const r = await execa('ip', ['netns', 'exec', name, ...cmd], { reject: false, timeout: o.timeoutMs ?? 60_000, input: o.input, stdin: o.input === undefined ? 'ignore' : undefined });
    return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? 1 };
  };
  return {
    name,
    hostAddress,
    clientAddress,
    ...(hostAddress6 ? { hostAddress6, clientAddress6 } : {}),
    hostIf,
    exec,
    async httpSpread(url, count, o = {}) {
      const r = await exec([process.execPath, '-e', SPREAD_SCRIPT, url, String(count), String(o.concurrency ?? 8), String(o.timeoutMs ?? 2000)], { timeoutMs: 120_000 });
      if (r.exitCode !== 0) throw new Error(`client in ${name} failed: ${r.stderr.trim()}`);
      return new Map(Object.entries(JSON.parse(r.stdout) as Record<string, number>));
    },
    cleanup: () => removeNamespace(name),
  };
}

/** Runs inside the namespace: bounded in count and per-request time; errors are counted as `!error`. */
const SPREAD_SCRIPT = `
const http = require('node:http');
const [url, count, conc, tmo] = process.argv.slice(1);
const counts = {};
let next = 0;
function one() {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: Number(tmo) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => { const k = body.trim(); counts[k] = (counts[k] || 0) + 1; resolve(); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => { counts['!error'] = (counts['!error'] || 0) + 1; resolve(); });
  });
}
async function worker() { while (next < Number(count)) { next++; await one(); } }
Promise.all(Array.from({ length: Number(conc) }, worker)).then(() => process.stdout.write(JSON.stringify(counts)));
`;
