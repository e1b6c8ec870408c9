import { Args } from '@oclif/core';
import { dockerHostFlag } from '../../deploy-flags.js';
import { BaseCommand } from '../../base-command.js';
import { deployStatus } from '../../engine/deploy.js';
import { statusText } from '../../ui/deploy.js';

export default class DeployStatus extends BaseCommand {
  static override summary = 'Show deployed services: replicas desired/ready, revision, rollout phase, autoscaler decision';
  static override description = `For one service (or every service elastic deploy manages on the Docker host): the revision it runs and the previous one, the rollout phase (steady, rolling, rolling back, rolled back, interrupted, failed), each replica with its state, and the autoscaler's last decision with its reason. Read from the running deploy's status socket when there is one, else from the state file and Docker.`;
  static override examples = ['<%= config.bin %> deploy status', '<%= config.bin %> deploy status web --json'];
  static override enableJsonFlag = true;
  static override args = { service: Args.string({ description: 'service name (default: all)' }) };
  static override flags = { 'docker-host': dockerHostFlag };

  async run() {
    const { args, flags } = await this.parse(DeployStatus);
    const result = await deployStatus(args.service, { host: flags['docker-host'], logger: this.makeLogger(flags, 'deploy') });
    if (!this.jsonEnabled()) process.stdout.write(statusText(result.services));
    return result;
  }
}
