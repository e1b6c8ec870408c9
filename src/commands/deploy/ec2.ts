import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { Ec2Deployer, type Ec2DeployResult } from '../../engine/deploy/ec2.js';
import { parseLabels } from '../../engine/discovery/selector.js';
import { parseDuration } from '../../engine/deploy/spec.js';
import { parsePort } from '../../engine/model/validate.js';
import { ec2Text } from '../../ui/deploy.js';

export default class DeployEc2 extends BaseCommand {
  static override summary = 'Run N EC2 instances of a launch template, tagged so discover finds them';
  static override description = `The scale-out example without Terraform: keeps --replicas instances launched from --launch-template (RunInstances) tagged elastic.managed=true, elastic.service=NAME, elastic.revision and your --tag values, and terminates the extra ones (TerminateInstances). A new template version or tag set is a new revision: new instances are launched and running before the old ones are drained from elastic's load balancers (with --port) and terminated. --replicas 0 terminates them all. Find them with: elastic discover --tag elastic.service=NAME --port PORT.`;
  static override examples = [
    '<%= config.bin %> deploy ec2 --name web --launch-template lt-0abc123 --replicas 3 --tag Role=web --port 8080',
    '<%= config.bin %> deploy ec2 --name web --launch-template web-template --template-version 4 --replicas 3',
    '<%= config.bin %> deploy ec2 --name web --launch-template lt-0abc123 --replicas 0',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    name: Flags.string({ char: 'n', description: 'service name (the elastic.service tag)', required: true }),
    'launch-template': Flags.string({ description: 'launch template ID (lt-...) or name', required: true }),
    'template-version': Flags.string({ description: 'template version: a number, $Latest or $Default', default: '$Default' }),
    replicas: Flags.integer({ char: 'r', description: 'number of instances', required: true }),
    tag: Flags.string({ description: 'extra instance tag k=v (repeatable)', multiple: true }),
    port: Flags.string({ description: 'port the instances serve on (to drain them from elastic load balancers)' }),
    'drain-timeout': Flags.string({ description: 'longest wait for an instance to drain', default: '30s' }),
    'running-timeout': Flags.string({ description: 'longest wait for new instances to be running', default: '5m' }),
    region: Flags.string({ description: 'AWS region (default $AWS_REGION)' }),
    profile: Flags.string({ description: 'AWS shared-config profile' }),
    endpoint: Flags.string({ description: 'EC2 API endpoint (compatible clouds, tests)' }),
  };

  async run(): Promise<Ec2DeployResult> {
    const { flags } = await this.parse(DeployEc2);
    const logger = this.makeLogger(flags, 'deploy');
    const deployer = new Ec2Deployer({ region: flags.region, profile: flags.profile, endpoint: flags.endpoint, logger });
    const tags = Object.fromEntries(parseLabels(flags.tag, '--tag').map(({ key, value }) => [key, value]));
    const result = await deployer.deploy(
      {
        service: flags.name,
        replicas: flags.replicas,
        launchTemplate: flags['launch-template'],
        version: flags['template-version'],
        tags,
        port: flags.port === undefined ? undefined : parsePort(flags.port, '--port'),
        drainTimeoutMs: parseDuration(flags['drain-timeout'], '--drain-timeout'),
        runningTimeoutMs: parseDuration(flags['running-timeout'], '--running-timeout'),
      },
      { signal: this.shutdownSignal },
    );
    if (!this.jsonEnabled()) process.stdout.write(ec2Text(result));
    return result;
  }
}
