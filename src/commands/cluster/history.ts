import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { clusterHistory } from '../../engine/fleet/commands.js';
import { storeFlags } from '../../fleet-flags.js';
import { historyText } from '../../ui/cluster.js';

export default class ClusterHistory extends BaseCommand {
  static override summary = 'List the versions of the fleet config, newest first (* = current)';
  static override description = 'Every push and rollback is an immutable version in the fleet store: its number, text hash, when and by whom, and which version a rollback restored.';
  static override examples = ['<%= config.bin %> cluster history --fleet edge', '<%= config.bin %> cluster history --fleet edge --json'];
  static override enableJsonFlag = true;
  static override flags = {
    limit: Flags.integer({ description: 'at most this many versions (1-1000)', default: 50, min: 1, max: 1000 }),
    ...storeFlags,
  };

  async run() {
    const { flags } = await this.parse(ClusterHistory);
    const result = await clusterHistory(flags, flags.limit);
    if (!this.jsonEnabled()) process.stdout.write(historyText(result));
    return result;
  }
}
