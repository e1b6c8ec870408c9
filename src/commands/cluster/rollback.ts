import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { clusterRollback } from '../../engine/fleet/commands.js';
import { storeFlags } from '../../fleet-flags.js';
import { pushText } from '../../ui/cluster.js';

export default class ClusterRollback extends BaseCommand {
  static override summary = 'Make an old version of the fleet config current again, as a new version';
  static override description = 'Commits the text of version N (default: the one before current) as a new version, validated and swapped in like a push, so history only grows and every host converges on it.';
  static override examples = ['<%= config.bin %> cluster rollback --fleet edge', '<%= config.bin %> cluster rollback 3 --fleet edge'];
  static override enableJsonFlag = true;
  static override args = { version: Args.integer({ description: 'the version to restore (default: the one before current)', min: 1 }) };
  static override flags = {
    'dry-run': Flags.boolean({ description: 'show what would be committed; commit nothing' }),
    ...storeFlags,
  };

  async run() {
    const { args, flags } = await this.parse(ClusterRollback);
    const result = await clusterRollback(flags, args.version, flags['dry-run']);
    if (!this.jsonEnabled()) process.stdout.write(pushText(result));
    return result;
  }
}
