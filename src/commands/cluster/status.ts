import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { clusterStatus, watchClusterStatus } from '../../engine/fleet/commands.js';
import { storeFlags } from '../../fleet-flags.js';
import { statusText } from '../../ui/cluster.js';

export default class ClusterStatus extends BaseCommand {
  static override summary = 'The fleet: current version, leader, and per host alive, applied version, converged, refusals, backends';
  static override description = 'Read from the fleet store. A host is alive while its lease holds (TTL, run --lease-ttl) and converged when it applied the current version with the digest its part of that version has. A host that cannot reach the store keeps serving and shows here as STALE. Exit 3 with one line when the store cannot be reached. --watch prints it again whenever it changes (NDJSON with --json; an unreachable store is a line, not the end).';
  static override examples = ['<%= config.bin %> cluster status --etcd http://etcd-1:2379 --fleet edge', '<%= config.bin %> cluster status --fleet edge --json', '<%= config.bin %> cluster status --fleet edge --watch'];
  static override enableJsonFlag = true;
  static override flags = {
    watch: Flags.boolean({ char: 'w', description: 'stay running and print the status whenever it changes' }),
    interval: Flags.integer({ description: '--watch: seconds between reads (1-60)', default: 2, min: 1, max: 60 }),
    ...storeFlags,
  };

  async run() {
    const { flags } = await this.parse(ClusterStatus);
    if (flags.watch) {
      const signal = this.shutdownSignal;
      for await (const s of watchClusterStatus(flags, flags.interval * 1000, signal)) {
        if (this.jsonEnabled()) this.ndjson(s);
        else process.stdout.write(`${new Date().toISOString()}\n${'error' in s ? `error: ${s.error}\n` : statusText(s)}\n`);
      }
      return;
    }
    const result = await clusterStatus(flags);
    if (!this.jsonEnabled()) process.stdout.write(statusText(result));
    return result;
  }
}
