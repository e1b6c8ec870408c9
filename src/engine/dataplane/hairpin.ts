import { readdir, readFile, writeFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import { describeError } from '../errors.js';
import { createDocker } from '../discovery/docker/client.js';
import type { Logger } from '../runtime/logger.js';

/**
 * Hairpin: a container reaching its own mapping through the host (e.g. the bridge address).
 * With br_netfilter (Docker loads it), a frame DNATed back to a container on the bridge it came
 * from is bridged, not routed: back out of the port it came in on, which a bridge port does not
 * do unless its hairpin mode is on. The SYN was dropped, resent 1 s later, re-balanced: the
 * container never reached itself and 1 in N of its connections stalled 1 s. So every local
 * container backend gets hairpin mode on its bridge ports (what kubelet's hairpin-veth does);
 * the masquerade in `hp_<id>` then makes the replies come back through the host.
 */
export async function hairpinPid(pid: number): Promise<string[]> {
  const root = `/proc/${pid}/root/sys/class/net`;
  const peers = new Set<number>();
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (name === 'lo' || !/^[\w.-]{1,15}$/.test(name)) continue;
    const link = Number((await readFile(`${root}/${name}/iflink`, 'utf8').catch(() => '')).trim());
    const own = Number((await readFile(`${root}/${name}/ifindex`, 'utf8').catch(() => '')).trim());
    if (link > 0 && link !== own) peers.add(link);
  }
  if (peers.size === 0) return [];
  const done: string[] = [];
  for (const name of await readdir('/sys/class/net')) {
    if (!/^[\w.-]{1,15}$/.test(name)) continue;
    const index = Number((await readFile(`/sys/class/net/${name}/ifindex`, 'utf8').catch(() => '')).trim());
    if (!peers.has(index)) continue;
    const mode = `/sys/class/net/${name}/brport/hairpin_mode`;
    const now = (await readFile(mode, 'utf8').catch(() => null))?.trim();
    if (now === undefined || now === null) continue; // not a bridge port (macvlan, host network...)
    if (now !== '1') await writeFile(mode, '1');
    done.push(name);
  }
  return done;
}

/** Hairpin mode for these containers (`docker:<id>` backend ids) once each; only for a local daemon. */
export class Hairpins {
  private readonly done = new Set<string>();
  private readonly docker: Docker | null;

  constructor(
    dockerHost: string | undefined,
    env: NodeJS.ProcessEnv | undefined,
    private readonly log: Logger,
  ) {
    const { docker, target } = createDocker(dockerHost, env);
    this.docker = target.options.socketPath ? docker : null; // a remote daemon's containers are not on this host
  }

  async ensure(backendIds: readonly string[]): Promise<void> {
    const ids = backendIds.filter((id) => id.startsWith('docker:')).map((id) => id.slice('docker:'.length));
    const live = new Set(ids);
    for (const id of this.done) if (!live.has(id)) this.done.delete(id);
    if (!this.docker) return;
    for (const id of ids) {
      if (this.done.has(id)) continue;
      try {
        const pid = (await this.docker.getContainer(id).inspect()).State.Pid;
        if (pid > 0) await hairpinPid(pid);
        this.done.add(id);
      } catch (err) {
        this.log.debug(`no hairpin mode for container ${id}: it cannot reach itself through the mapping`, { error: describeError(err) });
      }
    }
  }
}
