/**
 * CPU and memory of `elastic top` with 1,000 backends at 4 refreshes/s for 30 s, in a real
 * terminal (tmux 80x24), while the backends view is scrolled. Fixture status sockets (the real
 * StatusServer, content shaped like map-image and edge) serve counters that change every
 * snapshot. Samples /proc/<pid>/stat (utime+stime) and /proc/<pid>/status (VmRSS) of the top
 * process. Goal: < 15% of one core, < 150 MB RSS.
 *
 *   npm run build && node --import tsx bench/top/bench.ts [--seconds 30] [--backends 1000] [--interval 0.25]
 */
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const seconds = Number(arg('seconds', '30'));
const backends = Number(arg('backends', '1000'));
const interval = arg('interval', '0.25');
const root = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(root, 'bin/run.js');
const session = `elastic-top-bench-${process.pid}`;
const runDir = mkdtempSync(join(tmpdir(), 'elastic-top-bench-'));
const HZ = 100; // USER_HZ on Linux

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
}
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function topPid(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const panePid = Number((await execa('tmux', ['display', '-p', '-t', session, '#{pane_pid}'])).stdout);
    const r = await execa('pgrep', ['-P', String(panePid), '-f', 'run.js top'], { reject: false });
    const child = Number(String(r.stdout).split('\n')[0]);
    if (child) return child;
    if (readFileSync(`/proc/${panePid}/cmdline`, 'utf8').includes('run.js')) return panePid;
    await sleep(100);
  }
  throw new Error('top did not start');
}

const server = execa(process.execPath, ['--import', 'tsx', join(root, 'test/fixtures/top/serve.ts'), '--dir', runDir, '--kinds', 'map-image,edge', '--backends', String(backends)], { cwd: root, stdin: 'pipe', reject: false });
try {
  await new Promise<void>((resolve, reject) => {
    server.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    setTimeout(() => reject(new Error('fixture server did not start')), 20_000);
  });
  await execa('tmux', ['new-session', '-d', '-s', session, '-x', '80', '-y', '24', '-e', `ELASTIC_RUN_DIR=${runDir}`, '-e', 'LANG=C.UTF-8', `${process.execPath} ${BIN} top --interval ${interval} --no-docker --view backends`]);
  const pid = await topPid();
  await sleep(3000); // start-up (module loading) is not the steady state being measured
  const t0 = Date.now();
  const c0 = cpuTicks(pid);
  let maxRss = 0;
  let step = 0;
  while (Date.now() - t0 < seconds * 1000) {
    // scroll like an operator: page down through the 1,000 rows, then back to the top
    await execa('tmux', ['send-keys', '-t', session, step % 80 === 79 ? 'g' : step % 8 === 0 ? 'PageDown' : 'j']);
    step++;
    maxRss = Math.max(maxRss, rssMb(pid));
    await sleep(250);
  }
  const cpu = ((cpuTicks(pid) - c0) / HZ / ((Date.now() - t0) / 1000)) * 100;
  const pane = String((await execa('tmux', ['capture-pane', '-p', '-t', session])).stdout);
  const result = {
    backends,
    intervalS: Number(interval),
    seconds,
    cpuPercentOfOneCore: Math.round(cpu * 10) / 10,
    maxRssMb: Math.round(maxRss * 10) / 10,
    goal: { cpuPercent: 15, rssMb: 150 },
    pass: cpu < 15 && maxRss < 150,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n--- last frame ---\n${pane}\n`);
} finally {
  await execa('tmux', ['kill-session', '-t', session], { reject: false });
  server.stdin!.end();
  server.kill('SIGTERM');
  await server;
  rmSync(runDir, { recursive: true, force: true });
}
