import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { BIN } from '../support/cli.js';
import { docker, execText, hairpinMode, requireDocker, TEST_IMAGE, TestContainers, waitFor } from '../support/docker.js';
import { tearDownMapimg, testNetwork } from '../support/flows.js';
import { LineReader } from '../support/lines.js';
import { ownedStateDir } from '../support/owned.js';

/**
 * Issue 18, "Client source address ... test it", for IPv6: a backend reaching its own mapping
 * over IPv6 (the host's address on its bridge, the network's IPv6 gateway) lands on itself too
 * (`ip6 ... masquerade` in `hp_<id>`, and the bridge port's hairpin mode, hairpin.ts), no
 * connection stalls, and the backend sees the host's bridge address for hairpin traffic and the
 * real client address otherwise. Three containers on a dual-stack network of the test's own
 * (198.18.93.0/24 + 2001:2:0:93::/64). With the bridge port's hairpin mode off, every connection
 * that picked the container itself got no answer at all (hash spread: the resent SYN picks the
 * same backend), seen by hand.
 */
const tc = new TestContainers();
const image = `mapimg-ipv6-hp-${tc.runId}:1`;
const stateDir = ownedStateDir('mapimg-ipv6-hp-state-');
const runDir = mkdtempSync(join(tmpdir(), 'mapimg-ipv6-hp-run-'));
const env = { ELASTIC_STATE_DIR: stateDir, ELASTIC_RUN_DIR: runDir };
const PORT = 28600;
const N = 30;
let net: { name: string; remove: () => Promise<void> } | undefined;
let child: ResultPromise | undefined;

/** A CGI script answering `<hostname> [<client address>]`: busybox httpd sets REMOTE_ADDR. */
const PEER_CGI = '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s %s\\n" "$(cat /www/id)" "$REMOTE_ADDR"\n';
const CMD = ['sh', '-c', 'hostname > /www/id && busybox mkdir -p /www/cgi-bin && printf "%s" "$0" > /www/cgi-bin/peer && busybox chmod 755 /www/cgi-bin/peer && exec httpd -f -p 80 -h /www', PEER_CGI];

beforeAll(async () => {
  await requireDocker();
  await docker.getImage(TEST_IMAGE).tag({ repo: `mapimg-ipv6-hp-${tc.runId}`, tag: '1' });
  net = await testNetwork(`mapimg-ipv6-hp-${process.pid}`, '198.18.93.0/24', tc.runId, '2001:2:0:93::/64');
}, 120_000);

afterAll(async () => {
  if (child?.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  await tearDownMapimg({ env, tc, image, net, namespaces: [], dirs: [stateDir, runDir] });
});

describe('hairpin over IPv6: a backend reaching its own mapping through the host', () => {
  it('lands on itself too, sees the host bridge address then (its own address otherwise), and no connection stalls', async () => {
    const cs: Docker.Container[] = [];
    for (let i = 0; i < 3; i++) cs.push(await tc.run({ image, network: net!.name, cmd: CMD }));
    const infos = await Promise.all(cs.map((c) => c.inspect()));
    const n0 = infos[0]!.NetworkSettings.Networks[net!.name]!;
    const gateway6 = n0.IPv6Gateway; // the host, on the containers' bridge
    expect(gateway6.startsWith('2001:2:0:93::'), JSON.stringify(n0)).toBe(true);
    for (const c of cs) await waitFor(async () => (await execText(c, 'printf "GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n" | nc -w 2 127.0.0.1 80')).includes('127.0.0.1'), 'httpd with the CGI answering', 20_000, 200);

    child = execa(process.execPath, [BIN, 'map-image', String(PORT), image, '80', '--watch', '--dataplane', 'nft'], { reject: false, stdin: 'ignore', env: { CI: 'true', ...env } });
    const err = new LineReader(child.stderr!);
    onTestFailed(() => console.error(err.lines.join('\n')));
    // Setup, not what is measured: on a saturated machine the CLI took 10-24 s to start watching.
    await err.next((l) => l.includes(`applied tcp-${PORT}: 6 backend(s)`), 'first apply (3 containers, IPv4 and IPv6)', 60_000);
    // Hairpin mode is set right after the apply; a SYN to itself before that would never be answered.
    for (const c of cs) await waitFor(async () => (await hairpinMode(c)) === '1', 'hairpin mode on the bridge port', 10_000);

    // N connections from inside each container to [gateway6]:PORT, each timed there (a 1 s SYN retransmit shows).
    const script = `for i in $(seq 1 ${N}); do s=$(cat /proc/uptime); r=$(printf 'GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${gateway6} ${PORT} | tail -1); e=$(cat /proc/uptime); echo "c $s $e $r"; done`;
    for (const [i, c] of cs.entries()) {
      const info = infos[i]!;
      const self = info.Config.Hostname;
      const own6 = info.NetworkSettings.Networks[net!.name]!.GlobalIPv6Address;
      const text = await execText(c, script);
      // c <start> <idle> <end> <idle> <hostname> [<address>]
      const rows = text.split('\n').map((l) => l.trim().split(' ')).filter((p) => p[0] === 'c').map((p) => ({ ms: (Number(p[3]) - Number(p[1])) * 1000, host: p[5] ?? '', peer: p[6] ?? '' }));
      expect(rows, text).toHaveLength(N);
      expect(rows.filter((r) => r.host === ''), `every connection answered:\n${text}`).toEqual([]);
      expect(rows.filter((r) => r.ms >= 900), `no connection stalled:\n${text}`).toEqual([]);
      const hairpin = rows.filter((r) => r.host === self);
      expect(hairpin.length, `${self} landed on itself:\n${text}`).toBeGreaterThan(0);
      expect(hairpin.length, `${self} reached the others too:\n${text}`).toBeLessThan(N);
      // What the backend saw: the host's bridge address for hairpin (masqueraded), the real client otherwise (DNAT only).
      for (const r of rows) expect(r.peer, `${r.host} saw, from ${self}`).toBe(r.host === self ? `[${gateway6}]` : `[${own6}]`);
    }
  }, 120_000);
});
