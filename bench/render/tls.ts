/**
 * TLS benchmarks (issue 16), not part of npm test:
 *  1. HAProxy rendered by `elastic render` with 3 TLS sites vs a hand-written config for the same
 *     sites: new TLS connections/s (wrk -H 'Connection: close': a handshake per request) and
 *     keep-alive requests/s; rounds alternate, medians compared (goal: ratio >= 0.97).
 *  2. A certificate file changed -> the new certificate served (p50 goal < 200 ms), with the
 *     HAProxy reload counter unchanged (runtime API, no reload).
 * Usage: npx tsx bench/render/tls.ts [seconds=5] [rounds=3] [rotations=20]
 *  3. Keep-alive req/s against the equivalent hand-written config: the same one given the
 *     rendered guarantee that no request is lost to a vanished backend (`retries 3`, `option
 *     redispatch 1`, `retry-on conn-failure empty-response response-timeout`, no L7 retry of
 *     POST/PATCH/LOCK). That L7 retry copies the request buffer per request in HAProxy 2.6
 *     (bench/render/tls-cost.sh); the keep-alive goal is against this one.
 * Ports (the TLS area's range): rendered 25860/25861, hand-written 25862/25863, backends 25870-25872;
 * hand-written with the retry line 27602/27603.
 */
import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HaproxyProcess } from '../../src/engine/frontends/haproxy/process.js';
import { renderStop } from '../../src/engine/render.js';
import { elastic } from '../../test/support/cli.js';
import { LineReader } from '../../test/support/lines.js';
import { NamedBackends } from '../../test/support/route-backends.js';
import { TestCa, replaceFile } from '../../test/support/tls-certs.js';

const [seconds = 5, rounds = 3, rotations = 20] = process.argv.slice(2).map(Number);
const B = { local: 25870, api: 25871, wild: 25872 };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

async function wrk(port: number, close: boolean): Promise<number> {
  const args = ['-t2', '-c16', `-d${seconds}s`, '--timeout', '2s', ...(close ? ['-H', 'Connection: close'] : []), `https://localhost:${port}/`];
  const r = await execa('wrk', args, { timeout: (seconds + 20) * 1000 });
  if (/Socket errors|Non-2xx/.test(r.stdout)) console.error(`  warning: ${r.stdout.split('\n').filter((l) => /Socket|Non-2xx/.test(l)).join('; ')}`);
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 0);
}

function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const serial = s.getPeerCertificate().serialNumber.toUpperCase();
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'el-btls-'));
  const env = { ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_RUN_DIR: join(dir, 'run') };
  const backends = new NamedBackends();
  const ca = new TestCa(dir);
  let child: ReturnType<typeof elastic> | null = null;
  let hand: HaproxyProcess | null = null;
  let handRetry: HaproxyProcess | null = null;
  try {
    await ca.init();
    await backends.start(B);
    const certDir = join(dir, 'certs');
    await mkdir(certDir);
    await writeFile(join(certDir, 'localhost.pem'), (await ca.issue(['localhost'])).pem);
    await writeFile(join(certDir, 'api.example.com.pem'), (await ca.issue(['api.example.com'])).pem);
    await writeFile(join(certDir, '_.example.com.pem'), (await ca.issue(['*.example.com'])).pem);
    await writeFile(join(certDir, 'default.pem'), (await ca.issue(['default.test'])).pem);
    const site = (name: string, host: string, port: number) => `  - name: ${name}\n    bind: 127.0.0.1:25860\n    hosts: ["${host}"]\n    tls: true\n    lb_check: none\n    select: { backend: ["127.0.0.1:${port}"] }\n`;
    await writeFile(join(dir, 'sites.yaml'), `tls_bind: 127.0.0.1:25861\ncert_dir: ${certDir}\nservices:\n${site('local', 'localhost', B.local)}${site('api', 'api.example.com', B.api)}${site('wild', '*.example.com', B.wild)}`);
    child = elastic(['render', '--config', join(dir, 'sites.yaml'), '--instance-name', 'btls', '--start', '--watch', '--wait', '50ms:1s'], { env, timeout: 3_600_000 });
    const out = new LineReader(child.stdout!);
    await out.next((l) => /started/.test(l), 'render started', 30_000);

    // The hand-written equivalent: what an operator would write for the same three sites.
    const list = join(certDir, '..', 'hand.list');
    await writeFile(list, ['default.pem', 'localhost.pem localhost', 'api.example.com.pem api.example.com', '_.example.com.pem *.example.com'].map((l) => `${join(certDir, l.split(' ')[0]!)}${l.includes(' ') ? ` ${l.split(' ')[1]}` : ''}`).join('\n') + '\n');
    const cfg = join(dir, 'hand.cfg');
    await writeFile(cfg, `global\n  master-worker\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\nfrontend fe\n  bind 127.0.0.1:25862\n  bind 127.0.0.1:25863 ssl crt-list ${list} alpn http/1.1\n  option forwardfor\n  http-request set-header X-Forwarded-Proto https if { ssl_fc }\n  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }\n  use_backend b_local if { req.hdr(host),field(1,:),lower -m str localhost }\n  use_backend b_api if { req.hdr(host),field(1,:),lower -m str api.example.com }\n  use_backend b_wild if { req.hdr(host),field(1,:),lower -m end .example.com }\n  http-request return status 404 unless { req.hdr(host),field(1,:),lower -m str localhost } || { req.hdr(host),field(1,:),lower -m end .example.com }\nbackend b_local\n  server s1 127.0.0.1:${B.local}\nbackend b_api\n  server s1 127.0.0.1:${B.api}\nbackend b_wild\n  server s1 127.0.0.1:${B.wild}\n`);
    hand = new HaproxyProcess({ config: cfg, masterSocket: join(dir, 'hand.sock'), pidFile: join(dir, 'hand.pid') });
    await hand.start();
    const retryCfg = join(dir, 'hand-retry.cfg');
    await writeFile(
      retryCfg,
      (await readFile(cfg, 'utf8'))
        .replace('127.0.0.1:25862', '127.0.0.1:27602')
        .replace('127.0.0.1:25863', '127.0.0.1:27603')
        .replace('  timeout server 30s\n', '  timeout server 30s\n  retries 3\n  option redispatch 1\n')
        .replace(/^(backend .*)$/gm, '$1\n  retry-on conn-failure empty-response response-timeout\n  http-request disable-l7-retry if METH_POST || { method PATCH LOCK }'),
    );
    handRetry = new HaproxyProcess({ config: retryCfg, masterSocket: join(dir, 'hand-retry.sock'), pidFile: join(dir, 'hand-retry.pid') });
    await handRetry.start();

    const res: Record<string, number[]> = { renderedNew: [], handNew: [], renderedKa: [], handKa: [], retryKa: [] };
    for (let i = 0; i < rounds; i++) {
      res.renderedNew!.push(await wrk(25861, true));
      res.handNew!.push(await wrk(25863, true));
      // keep-alive: the order alternates round to round (what runs first or last is not favoured)
      const ka: Array<[string, number]> = [['handKa', 25863], ['retryKa', 27603], ['renderedKa', 25861]];
      for (const [k, port] of i % 2 ? ka.reverse() : ka) res[k]!.push(await wrk(port, false));
      console.error(`  round ${i + 1}: new conn/s rendered ${res.renderedNew!.at(-1)} hand ${res.handNew!.at(-1)}; keep-alive req/s rendered ${res.renderedKa!.at(-1)} hand ${res.handKa!.at(-1)} hand+retry ${res.retryKa!.at(-1)}`);
    }
    const nc = median(res.renderedNew!) / median(res.handNew!);
    const ka = median(res.renderedKa!) / median(res.handKa!);
    console.log(`new TLS connections/s (Connection: close): rendered ${median(res.renderedNew!)} vs hand-written ${median(res.handNew!)} -> ${nc.toFixed(3)}x (goal >= 0.97)`);
    console.log(`keep-alive requests/s over TLS: rendered ${median(res.renderedKa!)} vs hand-written equivalent (the same retries) ${median(res.retryKa!)} -> ${(median(res.renderedKa!) / median(res.retryKa!)).toFixed(3)}x (goal >= 0.97)`);
    console.log(`keep-alive requests/s over TLS: rendered ${median(res.renderedKa!)} vs hand-written without retries (loses requests to a vanished backend) ${median(res.handKa!)} -> ${ka.toFixed(3)}x`);

    // Rotation: new certificate served after the file changes, no reload.
    const master = new HaproxyProcess({ config: '', masterSocket: join(env.ELASTIC_RUN_DIR, 'render-btls', 'haproxy-master.sock'), pidFile: '' });
    const before = (await master.showProc())?.reloads;
    const fresh = [];
    for (let i = 0; i < rotations; i++) fresh.push(await ca.issue(['localhost']));
    const ms: number[] = [];
    for (const next of fresh) {
      const t0 = performance.now();
      await replaceFile(join(certDir, 'localhost.pem'), next.pem);
      while ((await servedSerial(25861)) !== next.serial.toUpperCase()) {
        if (performance.now() - t0 > 5000) throw new Error('new certificate not served within 5 s');
        await new Promise((r) => setTimeout(r, 5));
      }
      ms.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 300)); // apart from the runner's minimum interval
    }
    const after = (await master.showProc())?.reloads;
    console.log(`certificate file changed -> new certificate served (${rotations} rotations): p50 ${median(ms).toFixed(0)} ms, p95 ${pct(ms, 95).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms (goal p50 < 200 ms); HAProxy reloads ${before} -> ${after}`);
  } finally {
    if (child) {
      child.kill('SIGTERM');
      await child;
    }
    await renderStop({ instance: 'btls', proxy: 'haproxy', env, timeoutMs: 5000 }).catch(() => {});
    await hand?.stop().catch(() => {});
    await handRetry?.stop().catch(() => {});
    await backends.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
