// Handoff profile: edge + node in this process, the app in its own (test/fixtures/proxy/fast-app.mjs
// or any command after --). N sequential new connections (or C parallel loops), each one
// "GET / Connection: close": connect -> first response byte -> close, direct vs through the edge.
// Usage: npx tsx bench/proxy/handoff.ts [N=2000] [C=1] [-- APP COMMAND...]
import { connect } from 'node:net';
import { startEdge, startNode } from '../../src/engine/proxy.js';

const dash = process.argv.indexOf('--');
const args = dash < 0 ? process.argv.slice(2) : process.argv.slice(2, dash);
const N = Number(args[0] ?? 2000);
const C = Number(args[1] ?? 1);
const appCmd = dash < 0 ? [process.execPath, 'test/fixtures/proxy/fast-app.mjs'] : process.argv.slice(dash + 1);
const env = { ELASTIC_EDGE_TOKEN: 'handoff-bench-token-0123456789' };
const APP = Number(process.env.APP_PORT ?? 18530);

function once(port: number): Promise<[number, number]> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let first = 0n;
    const s = connect({ host: '127.0.0.1', port, noDelay: true });
    s.on('error', reject);
    s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    s.on('data', () => {
      if (!first) first = process.hrtime.bigint();
    });
    s.on('end', () => s.end());
    s.on('close', () => resolve([Number(first - t0) / 1e6, Number(process.hrtime.bigint() - t0) / 1e6]));
  });
}

async function run(port: number): Promise<{ fb: number[]; all: number[]; rps: number }> {
  const fb: number[] = [];
  const all: number[] = [];
  let left = N;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (left-- > 0) {
        const [f, a] = await once(port);
        fb.push(f);
        all.push(a);
      }
    }),
  );
  return { fb, all, rps: (N / (Date.now() - t0)) * 1000 };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!.toFixed(3);
const show = (name: string, r: { fb: number[]; all: number[]; rps: number }) =>
  console.log(`${name.padEnd(7)} n=${N} c=${C}  first byte p50 ${pct(r.fb, 50)} p90 ${pct(r.fb, 90)} p99 ${pct(r.fb, 99)} ms  close p50 ${pct(r.all, 50)} ms  ${r.rps.toFixed(0)} conn/s`);

const edge = await startEdge({ listeners: [{ kind: 'tcp', port: 0 }], env, status: false, maxQueue: 10000 });
const { node } = await startNode({ edge: `127.0.0.1:${edge.nodePort}`, concurrency: Number(process.env.CONC ?? 16), command: appCmd, appPort: APP, env, status: false });
await new Promise((r) => setTimeout(r, 500));
await run(APP); // warm up
show('direct', await run(APP));
show('edge', await run(edge.clientPorts[0]!));
show('direct', await run(APP));
show('edge', await run(edge.clientPorts[0]!));
console.log('edge counters', JSON.stringify(edge.server.counters), 'requeued', [...edge.server.routes.values()].map((r) => r.requeued), 'node', JSON.stringify(node.view()));
console.log('load', (await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' '));
await node.stop('done');
await edge.close();
process.exit(0);
