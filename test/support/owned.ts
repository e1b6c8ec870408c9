import { execa } from 'execa';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { fileURLToPath } from 'node:url';
import { pidAlive } from '../../src/engine/runtime/pid.js';
import { BIN } from './cli.js';

/**
 * Leftovers of test processes that died without their afterAll (the runner killed with -9, the
 * machine restarted): kernel rules, state directories and labelled containers. Tests cannot
 * clean up after SIGKILL, so the next run does it before any test starts (test/global-setup.ts).
 *
 * A test that gives elastic a state directory takes it from `ownedStateDir()`: the directory
 * names its owner (this process's pid). A directory whose owner is gone is swept with
 * `elastic deploy rm` for each service it deployed and `elastic map-image stop --all` (every kernel
 * object of that state directory's namespace, listed in its state or not), then removed. Containers labelled `elastic.test=t<pid>-...`
 * (support/docker.ts) whose pid is gone are removed. Anything whose owner still runs (another
 * run on the same machine) is left alone.
 */
export const OWNER_FILE = '.elastic-test-owner';
const DIST = fileURLToPath(new URL('../../dist', import.meta.url));

export function ownedStateDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, OWNER_FILE), `${process.pid}\n`);
  return dir;
}


export interface Swept {
  dirs: string[];
  containers: string[];
  problems: string[];
}

export async function sweepLeftovers(root = tmpdir()): Promise<Swept> {
  const out: Swept = { dirs: [], containers: [], problems: [] };
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    const owner = join(dir, OWNER_FILE);
    if (!existsSync(owner)) continue;
    if (pidAlive(Number(readFileSync(owner, 'utf8').trim()))) continue;
    if (!existsSync(DIST)) {
      out.problems.push(`${dir}: not built, kernel objects not swept (npm run build)`);
      continue;
    }
    const runDir = mkdtempSync(join(tmpdir(), 'elastic-sweep-run-'));
    const env = { ELASTIC_STATE_DIR: dir, ELASTIC_RUN_DIR: runDir, CI: 'true' };
    try {
      // Services a dead run deployed: their containers go with `elastic deploy rm`.
      for (const svc of readdirSync(dir).flatMap((f) => /^deploy-([A-Za-z0-9_-]+)\.json$/.exec(f)?.[1] ?? [])) {
        const d = await execa(process.execPath, [BIN, 'deploy', 'rm', svc], { reject: false, stdin: 'ignore', timeout: 120_000, env });
        if (d.exitCode !== 0) out.problems.push(`${dir}: deploy rm ${svc} exited ${d.exitCode}: ${String(d.stderr).trim().split('\n')[0]}`);
      }
      const r = await execa(process.execPath, [BIN, 'map-image', 'stop', '--all'], { reject: false, stdin: 'ignore', timeout: 60_000, env });
      if (r.exitCode !== 0) {
        out.problems.push(`${dir}: map-image stop --all exited ${r.exitCode}: ${String(r.stderr).trim().split('\n')[0]}`);
        continue; // keep the directory: its namespace can still be swept by hand
      }
      rmSync(dir, { recursive: true, force: true });
      out.dirs.push(dir);
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  }
  try {
    const docker = new Docker({ socketPath: '/var/run/docker.sock' });
    const list = await docker.listContainers({ all: true, filters: JSON.stringify({ label: ['elastic.test'] }) });
    for (const c of list) {
      const pid = Number(/^t(\d+)-/.exec(c.Labels['elastic.test'] ?? '')?.[1]);
      if (!pid || pidAlive(pid)) continue;
      await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
      out.containers.push(c.Names[0] ?? c.Id);
    }
  } catch {
    /* no dockerd here: the tests that need it say so */
  }
  return out;
}
