import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { clusterPush } from '../../engine/fleet/commands.js';
import { ConfigError } from '../../engine/run/config.js';
import { storeFlags } from '../../fleet-flags.js';
import { pushText } from '../../ui/cluster.js';

export default class ClusterPush extends BaseCommand {
  static override summary = 'Commit a new version of the fleet config to the fleet store';
  static override description = `Validates the file exactly like run --check (same messages, file:line; each host's part of a hosts: section too) and refuses an invalid one. Then commits it as an immutable version and swaps the fleet's current pointer with a compare-and-swap: of two pushes at once one wins, the other is refused and told to re-read. Prints the version and what changed in meaning since the current one. Every fleet host (run --host) applies it. --dry-run validates and prints the diff, and commits nothing. See docs/fleet.md.`;
  static override examples = ['<%= config.bin %> cluster push -c elastic.yaml --etcd http://etcd-1:2379 --fleet edge', '<%= config.bin %> cluster push -c elastic.yaml --fleet edge --dry-run'];
  static override enableJsonFlag = true;
  static override flags = {
    config: Flags.string({ char: 'c', description: 'the fleet config file (elastic.yaml, with an optional hosts: section)', required: true }),
    'dry-run': Flags.boolean({ description: 'validate and show the diff; commit nothing' }),
    ...storeFlags,
  };

  async run() {
    const { flags } = await this.parse(ClusterPush);
    try {
      const result = await clusterPush(flags, flags.config, flags['dry-run']);
      if (!this.jsonEnabled()) process.stdout.write(pushText(result));
      return result;
    } catch (err) {
      // Every problem on stderr, as run --check prints them (the error line carries the first).
      if (err instanceof ConfigError && err.problems.length > 1 && !this.jsonEnabled()) for (const p of err.problems) process.stderr.write(`${p}\n`);
      throw err;
    }
  }
}
