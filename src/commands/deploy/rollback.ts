import { Flags } from '@oclif/core';
import { dockerHostFlag, serviceArg } from '../../deploy-flags.js';
import { BaseCommand } from '../../base-command.js';
import { deployRollback } from '../../engine/deploy.js';
import { writeProgress, resultText } from '../../ui/deploy.js';

export default class DeployRollback extends BaseCommand {
  static override summary = 'Roll a service back to its previous revision';
  static override description = `A rolling update to the revision before the current one (kept in the state file), with the same health gate, surge/unavailable budget and drain as any rollout. Its image must still be on the host.`;
  static override examples = ['<%= config.bin %> deploy rollback web', '<%= config.bin %> deploy rollback web --dry-run'];
  static override enableJsonFlag = true;
  static override args = { service: serviceArg };
  static override flags = { 'docker-host': dockerHostFlag, 'dry-run': Flags.boolean({ description: 'print the plan and change nothing' }) };

  async run() {
    const { args, flags } = await this.parse(DeployRollback);
    const result = await deployRollback(args.service, {
      host: flags['docker-host'],
      logger: this.makeLogger(flags, 'deploy'),
      signal: this.shutdownSignal,
      onEvent: writeProgress,
      dryRun: flags['dry-run'],
    });
    if (!this.jsonEnabled()) process.stdout.write(resultText(result));
    return result;
  }
}
