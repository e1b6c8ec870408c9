import { dockerHostFlag, serviceArg } from '../../deploy-flags.js';
import { BaseCommand } from '../../base-command.js';
import { deployRm } from '../../engine/deploy.js';
import { writeProgress } from '../../ui/deploy.js';

export default class DeployRm extends BaseCommand {
  static override summary = 'Remove a deployed service: drain, stop and remove every replica, forget its state';
  static override description = `Each replica is drained from elastic's load balancers on this host, stopped and removed; the state file goes too. Only containers labelled elastic.managed=true for the service are touched.`;
  static override examples = ['<%= config.bin %> deploy rm web'];
  static override enableJsonFlag = true;
  static override args = { service: serviceArg };
  static override flags = { 'docker-host': dockerHostFlag };

  async run() {
    const { args, flags } = await this.parse(DeployRm);
    const result = await deployRm(args.service, {
      host: flags['docker-host'],
      logger: this.makeLogger(flags, 'deploy'),
      signal: this.shutdownSignal,
      onEvent: writeProgress,
    });
    if (!this.jsonEnabled()) process.stdout.write(`${result.service}: removed ${result.removed} container(s)\n`);
    return result;
  }
}
