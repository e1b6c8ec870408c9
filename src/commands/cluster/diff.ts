import { Args } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { clusterDiff } from '../../engine/fleet/commands.js';
import { storeFlags } from '../../fleet-flags.js';
import { diffText } from '../../ui/cluster.js';

export default class ClusterDiff extends BaseCommand {
  static override summary = 'What changed in meaning between two versions of the fleet config';
  static override description = 'A semantic diff: services and deploys compared by name (order does not matter), secrets never shown. B defaults to the current version.';
  static override examples = ['<%= config.bin %> cluster diff 3 5 --fleet edge', '<%= config.bin %> cluster diff 3 --fleet edge   # 3 against current'];
  static override enableJsonFlag = true;
  static override args = {
    a: Args.integer({ description: 'the older version', required: true, min: 1 }),
    b: Args.integer({ description: 'the newer version (default: current)', min: 1 }),
  };
  static override flags = { ...storeFlags };

  async run() {
    const { args, flags } = await this.parse(ClusterDiff);
    const result = await clusterDiff(flags, args.a, args.b);
    if (!this.jsonEnabled()) process.stdout.write(diffText(result));
    return result;
  }
}
