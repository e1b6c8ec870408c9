import { Flags } from '@oclif/core';
import { dockerHostFlag, serviceArg } from '../../deploy-flags.js';
import { BaseCommand } from '../../base-command.js';
import { deployScale } from '../../engine/deploy.js';
import { writeProgress, resultText } from '../../ui/deploy.js';

export default class DeployScale extends BaseCommand {
  static override summary = 'Change the number of replicas of a deployed service';
  static override description = `Sets the replica count and converges: new replicas pass the health gate; removed ones are drained from elastic's load balancers, stopped and removed. When a long-running deploy of the service is running (--watch or autoscaling), the request goes to it. Also resumes an interrupted rollout.`;
  static override examples = ['<%= config.bin %> deploy scale web --replicas 5', '<%= config.bin %> deploy scale web -r 0'];
  static override enableJsonFlag = true;
  static override args = { service: serviceArg };
  static override flags = {
    replicas: Flags.integer({ char: 'r', description: 'replica count', required: true }),
    'docker-host': dockerHostFlag,
  };

  async run() {
    const { args, flags } = await this.parse(DeployScale);
    const result = await deployScale(args.service, flags.replicas, {
      host: flags['docker-host'],
      logger: this.makeLogger(flags, 'deploy'),
      signal: this.shutdownSignal,
      onEvent: writeProgress,
    });
    if (!this.jsonEnabled()) process.stdout.write('replicas' in result ? resultText(result) : `${result.service}: scale to ${result.desired} sent to the ${result.via}\n`);
    return result;
  }
}
