import { createHash, randomUUID } from 'node:crypto';
import { DescribeInstancesCommand, RunInstancesCommand, TerminateInstancesCommand, type EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { createEc2Client, ec2Error, type Ec2ClientOptions, type Ec2Target } from '../discovery/ec2/client.js';
import { ExitCode, UserError } from '../errors.js';
import { isAddress, isSafeText, printable } from '../model/validate.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import { drainEverywhere } from './drain.js';
import { LABEL, checkReplicas, checkService } from './spec.js';

/**
 * The EC2 target (the scale-out example without Terraform): instances launched from a launch
 * template and tagged like our containers (elastic.managed / elastic.service / elastic.revision),
 * so `discover --tag elastic.service=SVC --port P` finds them. Reconciles the count; a changed
 * template version or tag set is a new revision, replaced new-first (launch, wait running, then
 * drain and terminate the old). SDK types stay in this file.
 */
export interface Ec2DeploySpec {
  readonly service: string;
  readonly replicas: number;
  /** `lt-0123...` (an ID) or a template name. */
  readonly launchTemplate: string;
  readonly version: string;
  readonly tags: Readonly<Record<string, string>>;
  /** For draining old instances from elastic's load balancers. */
  readonly port?: number;
  readonly drainTimeoutMs: number;
  readonly runningTimeoutMs: number;
}

export interface Ec2Replica {
  readonly instanceId: string;
  readonly state: string;
  readonly revision: string;
  readonly address?: string;
  readonly launched: string;
}

export interface Ec2DeployResult {
  readonly v: 1;
  readonly service: string;
  readonly revision: string;
  readonly launched: string[];
  readonly terminated: string[];
  readonly instances: Ec2Replica[];
}

export function ec2Revision(s: Pick<Ec2DeploySpec, 'launchTemplate' | 'version' | 'tags'>): string {
  const tags = Object.keys(s.tags).sort().map((k) => [k, s.tags[k]]);
  return `lt-${createHash('sha256').update(JSON.stringify([s.launchTemplate, s.version, tags])).digest('hex').slice(0, 8)}`;
}

export function checkEc2Spec(s: Ec2DeploySpec): Ec2DeploySpec {
  checkService(s.service);
  checkReplicas(s.replicas);
  if (!/^[A-Za-z0-9()./_-]{3,128}$/.test(s.launchTemplate)) throw new UserError(`invalid --launch-template "${printable(s.launchTemplate, 60)}"`, 'pass a launch template ID (lt-...) or name', ExitCode.usage);
  if (!/^(\d{1,10}|\$Latest|\$Default)$/.test(s.version)) throw new UserError(`invalid --template-version "${printable(s.version, 20)}"`, 'pass a version number, $Latest or $Default', ExitCode.usage);
  for (const [k, v] of Object.entries(s.tags)) {
    if (k.startsWith('elastic.') || k.startsWith('aws:') || !isSafeText(k, 128) || !isSafeText(v, 256)) throw new UserError(`tag ${printable(k, 40)} is reserved or invalid`, 'tags starting with elastic. or aws: are not yours to set', ExitCode.usage);
  }
  return s;
}

const byLaunch = (a: Ec2Replica, b: Ec2Replica) => (a.launched < b.launched ? 1 : a.launched > b.launched ? -1 : a.instanceId < b.instanceId ? 1 : -1);

export class Ec2Deployer {
  private readonly client: EC2Client;
  private readonly target: Ec2Target;
  private readonly log: Logger;

  constructor(opts: Ec2ClientOptions & { logger?: Logger; env?: NodeJS.ProcessEnv } = {}) {
    ({ client: this.client, target: this.target } = createEc2Client(opts, opts.env));
    this.log = opts.logger ?? nullLogger;
  }

  private async call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw ec2Error(err, this.target, action);
    }
  }

  async instances(service: string): Promise<Ec2Replica[]> {
    const out: Ec2Replica[] = [];
    let token: string | undefined;
    do {
      const r = await this.call('ec2:DescribeInstances', () =>
        this.client.send(
          new DescribeInstancesCommand({
            Filters: [
              { Name: `tag:${LABEL.managed}`, Values: ['true'] },
              { Name: `tag:${LABEL.service}`, Values: [service] },
              { Name: 'instance-state-name', Values: ['pending', 'running'] },
            ],
            MaxResults: 1000,
            NextToken: token,
          }),
        ),
      );
      for (const res of r.Reservations ?? []) for (const i of res.Instances ?? []) out.push(toReplica(i));
      token = r.NextToken;
    } while (token);
    return out.filter((i) => i.state === 'pending' || i.state === 'running');
  }

  private async launch(s: Ec2DeploySpec, revision: string, count: number): Promise<string[]> {
    const lt = s.launchTemplate.startsWith('lt-') ? { LaunchTemplateId: s.launchTemplate } : { LaunchTemplateName: s.launchTemplate };
    const tags = { ...s.tags, [LABEL.managed]: 'true', [LABEL.service]: s.service, [LABEL.revision]: revision };
    const r = await this.call('ec2:RunInstances', () =>
      this.client.send(
        new RunInstancesCommand({
          LaunchTemplate: { ...lt, Version: s.version },
          MinCount: count,
          MaxCount: count,
          // Retries of this call (SDK, network) must not launch twice.
          ClientToken: randomUUID(),
          TagSpecifications: [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
        }),
      ),
    );
    return (r.Instances ?? []).map((i) => i.InstanceId ?? '').filter(Boolean);
  }

  private async terminate(ids: string[]): Promise<void> {
    if (ids.length) await this.call('ec2:TerminateInstances', () => this.client.send(new TerminateInstancesCommand({ InstanceIds: ids })));
  }

  /** Reconcile: launch what is missing, wait until running, drain and terminate what is extra or old. */
  async deploy(spec: Ec2DeploySpec, opts: { runDir?: string; signal?: AbortSignal } = {}): Promise<Ec2DeployResult> {
    const s = checkEc2Spec(spec);
    const revision = ec2Revision(s);
    const before = await this.instances(s.service);
    const current = before.filter((i) => i.revision === revision).sort(byLaunch);
    const old = before.filter((i) => i.revision !== revision);
    const launched = current.length < s.replicas ? await this.launch(s, revision, s.replicas - current.length) : [];
    if (launched.length) this.log.info(`launched ${launched.length} instance(s)`, { service: s.service, revision });
    // Extra current ones go at once; old ones only once the new ones run.
    const extra = current.slice(0, Math.max(0, current.length - s.replicas));
    if (launched.length || old.length) await this.waitRunning(s, revision, opts.signal);
    const retire = [...extra, ...old];
    if (s.port !== undefined) {
      await Promise.all(retire.filter((i) => i.address).map((i) => drainEverywhere({ service: s.service, address: i.address!, port: s.port! }, s.drainTimeoutMs, { runDir: opts.runDir, logger: this.log })));
    }
    await this.terminate(retire.map((i) => i.instanceId));
    if (retire.length) this.log.info(`terminated ${retire.length} instance(s)`, { service: s.service });
    return { v: 1, service: s.service, revision, launched, terminated: retire.map((i) => i.instanceId), instances: (await this.instances(s.service)).sort(byLaunch).reverse() };
  }

  async rm(service: string, opts: { port?: number; drainTimeoutMs?: number; runDir?: string } = {}): Promise<string[]> {
    const all = await this.instances(checkService(service));
    if (opts.port !== undefined) await Promise.all(all.filter((i) => i.address).map((i) => drainEverywhere({ service, address: i.address!, port: opts.port! }, opts.drainTimeoutMs ?? 30_000, { runDir: opts.runDir })));
    await this.terminate(all.map((i) => i.instanceId));
    return all.map((i) => i.instanceId);
  }

  private async waitRunning(s: Ec2DeploySpec, revision: string, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + s.runningTimeoutMs;
    for (let delay = 200; ; delay = Math.min(delay * 2, 5_000)) {
      const mine = (await this.instances(s.service)).filter((i) => i.revision === revision);
      if (mine.length >= s.replicas && mine.every((i) => i.state === 'running')) return;
      if (Date.now() > deadline || signal?.aborted) {
        throw new UserError(`the new instances of ${s.service} are not running after ${Math.round(s.runningTimeoutMs / 1000)} s`, 'check the launch template and the EC2 console; the old instances were kept', ExitCode.unavailable);
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

function toReplica(i: Instance): Ec2Replica {
  const tag = (k: string) => i.Tags?.find((t) => t.Key === k)?.Value ?? '';
  const addr = i.PrivateIpAddress;
  return {
    instanceId: printable(i.InstanceId ?? '', 40),
    state: printable(i.State?.Name ?? 'unknown', 20),
    revision: printable(tag(LABEL.revision), 40),
    address: addr && isAddress(addr) ? addr : undefined,
    launched: i.LaunchTime ? new Date(i.LaunchTime).toISOString() : '',
  };
}
