import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceFor } from '../../src/engine/dataplane/namespace.js';
import { elastic } from '../support/cli.js';
import { docker, requireDocker, TEST_IMAGE } from '../support/docker.js';
import { OWNER_FILE, sweepLeftovers } from '../support/owned.js';
import { FAST } from '../support/deploy.js';

/**
 * A test run killed with -9 cannot clean up: the next run sweeps what it left (global setup).
 * Here a "dead run" is made for real: a state directory owned by a process that has exited,
 * kernel rules programmed by the real CLI for it, and a container with its label.
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-sweep-state-'));
const runDir = mkdtempSync(join(tmpdir(), 'elastic-sweep-run-'));
const ns = namespaceFor(dir);
let containerId = '';
const svc = `sweep${process.pid % 100000}`;
const deployed = async () => docker.listContainers({ all: true, filters: JSON.stringify({ label: [`elastic.service=${svc}`, 'elastic.managed=true'] }) });

afterAll(async () => {
  if (existsSync(dir)) await elastic(['map-image', 'stop', '--all'], { env: { ELASTIC_STATE_DIR: dir, ELASTIC_RUN_DIR: runDir } });
  if (containerId) await docker.getContainer(containerId).remove({ force: true }).catch(() => {});
  for (const c of await deployed().catch(() => [])) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

describe('sweeping what killed test runs left behind', () => {
  it('removes the rules, the deployed services, the state directory and the containers of a run whose process is gone, and nothing else', async () => {
    await requireDocker();
    const gone = execa('true');
    await gone;
    const dead = gone.pid!; // a process that has exited: the "killed runner"
    writeFileSync(join(dir, OWNER_FILE), `${dead}\n`);
    const r = await elastic(['map-image', '18398', 'none:1', '80', '--backend', '198.18.9.8:80', '--dataplane', 'nft'], { env: { ELASTIC_STATE_DIR: dir, ELASTIC_RUN_DIR: runDir } });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect((await execa('nft', ['list', 'table', 'ip', ns.nftTable], { reject: false })).exitCode).toBe(0);
    const d = await elastic(['deploy', TEST_IMAGE, '--name', svc, '-r', '1', '--port', '80', ...FAST], { env: { ELASTIC_STATE_DIR: dir, ELASTIC_RUN_DIR: runDir } });
    expect(d.exitCode, String(d.stderr)).toBe(0);
    expect(await deployed()).toHaveLength(1);
    const c = await docker.createContainer({ Image: TEST_IMAGE, Labels: { 'elastic.test': `t${dead}-sweep` } });
    containerId = c.id;
    const live = mkdtempSync(join(tmpdir(), 'elastic-sweep-live-')); // owned by this (running) process
    writeFileSync(join(live, OWNER_FILE), `${process.pid}\n`);

    const swept = await sweepLeftovers();

    expect(swept.dirs).toContain(dir);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect((await execa('nft', ['list', 'table', 'ip', ns.nftTable], { reject: false })).exitCode).not.toBe(0);
    expect(String((await execa('iptables-save')).stdout)).not.toContain(ns.chainPrefix);
    expect(swept.containers.length).toBeGreaterThanOrEqual(1);
    await expect(docker.getContainer(containerId).inspect()).rejects.toThrow();
    expect(await deployed()).toHaveLength(0);
    expect(swept.problems).toEqual([]);
    rmSync(live, { recursive: true, force: true });
  });
});
