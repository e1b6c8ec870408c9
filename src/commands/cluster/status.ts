import { BaseCommand } from '../../base-command.js';
import { clusterStatus } from '../../engine/fleet/commands.js';
import { storeFlags } from '../../fleet-flags.js';
import { statusText } from '../../ui/cluster.js';

export default class ClusterStatus extends BaseCommand {
  static override summary = 'The fleet: current version, leader, and per host alive, applied version, converged, refusals, backends';
  static override description = 'Read from the fleet store. A host is alive while its lease holds (TTL, run --lease-ttl) and converged when it applied the current version with the digest its part of that version has. A host that cannot reach the store keeps serving and shows here as STALE. Exit 3 with one line when the store cannot be reached.';
  static override examples = ['<%= config.bin %> cluster status --etcd http://etcd-1:2379 --fleet edge', '<%= config.bin %> cluster status --fleet edge --json'];
  static override enableJsonFlag = true;
  static override flags = { ...storeFlags };

  async run() {
    const { flags } = await this.parse(ClusterStatus);
    const result = await clusterStatus(flags);
    if (!this.jsonEnabled()) process.stdout.write(statusText(result));
    return result;
  }
}
