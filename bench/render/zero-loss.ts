/**
 * Failed requests per runtime change and per reload under load: wrk -t1 -c10 on 127.0.0.1
 * through HAProxy while render applies membership changes (runtime API) and structural changes
 * (seamless master-worker reloads). Usage:
 *   npx tsx bench/render/zero-loss.ts [changes=100] [reloads=20] [template]
 * (a template path lets you compare, e.g. the built-in one without `option idle-close-on-response`).
 */
import { execa } from 'execa';
import { parseWrk } from '../../test/support/render-backends.js';
import { world } from './common.js';

const CHANGES = Number(process.argv[2] ?? 100);
const RELOADS = Number(process.argv[3] ?? 20);
const template = process.argv[4];
const FRONT = 18451;
const PORTS = [18484, 18485, 18486, 18487];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const w = await world('benchzl', FRONT, PORTS);
try {
  await (await w.renderer({ template })).sync({ web: [w.backend(PORTS[0]!), w.backend(PORTS[1]!)] });
  const seconds = Math.ceil((CHANGES * 0.1 + RELOADS * 0.5) + 4);
  const load = execa('wrk', ['-t1', '-c10', `-d${seconds}s`, '--timeout', '5s', `http://127.0.0.1:${FRONT}/id`], { stdin: 'ignore', timeout: (seconds + 30) * 1000 });
  await sleep(1000);
  const sets = [[0, 1, 2], [1, 2], [1, 2, 3], [2, 3], [2, 3, 0], [3, 0], [3, 0, 1], [0, 1]];
  const renderer = await w.renderer({ template });
  const counts: Record<string, number> = {};
  for (let i = 0; i < CHANGES; i++) {
    const r = await renderer.sync({ web: sets[i % sets.length]!.map((k) => w.backend(PORTS[k]!)) });
    counts[r.action] = (counts[r.action] ?? 0) + 1;
    await sleep(60);
  }
  for (let i = 0; i < RELOADS; i++) {
    const r = await (await w.renderer({ template, checkMs: 1000 + (i % 2) * 100 })).sync({ web: [w.backend(PORTS[0]!), w.backend(PORTS[1]!)] });
    counts[r.action] = (counts[r.action] ?? 0) + 1;
    await sleep(400);
  }
  const out = parseWrk(String((await load).stdout));
  console.log(`applies: ${JSON.stringify(counts)}`);
  console.log(`wrk: ${out.requests} requests, non-2xx ${out.non2xx}, socket errors ${out.socketErrors}`);
  console.log(out.raw.split('\n').filter((l) => /Socket errors|Non-2xx|Requests\/sec|requests in/.test(l)).join('\n'));
} finally {
  await w.close();
}
