import { Ec2FaultError, esc, type Ec2Request, type Ec2TestServer, type FakeInstance } from './ec2-server.js';

/**
 * RunInstances and TerminateInstances for the loopback EC2 server (added through its `actions`
 * map): launched instances get the tags of TagSpecification.1 and a private address in
 * 198.19.6.0/24, start `pending` and turn `running` on the next DescribeInstances (as EC2 does,
 * a little later). `launches` records every RunInstances call's launch template and ClientToken.
 */
const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export interface Launch {
  template: string;
  version: string;
  count: number;
  clientToken: string;
  tags: Record<string, string>;
}

export function installInstanceActions(server: Ec2TestServer): { launches: Launch[] } {
  const launches: Launch[] = [];
  let seq = 0;
  const describe = server.actions.get('DescribeInstances')!;
  server.actions.set('DescribeInstances', (req, s) => {
    const body = describe(req, s);
    for (const i of s.instances) if (i.state === 'pending') i.state = 'running'; // running from the next look on
    return body;
  });
  server.actions.set('RunInstances', (req: Ec2Request) => {
    const p = req.params;
    const template = p['LaunchTemplate.LaunchTemplateId'] ?? p['LaunchTemplate.LaunchTemplateName'];
    if (!template) throw new Ec2FaultError({ status: 400, code: 'MissingParameter', message: 'a launch template is required' });
    const count = Number(p.MaxCount);
    if (!(count >= 1) || Number(p.MinCount) > count) throw new Ec2FaultError({ status: 400, code: 'InvalidParameterValue', message: 'bad MinCount/MaxCount' });
    const tags: Record<string, string> = {};
    for (let n = 1; p[`TagSpecification.1.Tag.${n}.Key`] !== undefined; n++) tags[p[`TagSpecification.1.Tag.${n}.Key`]!] = p[`TagSpecification.1.Tag.${n}.Value`] ?? '';
    launches.push({ template, version: p['LaunchTemplate.Version'] ?? '$Default', count, clientToken: p.ClientToken ?? '', tags });
    const reservationId = `r-${(++seq).toString(16).padStart(17, '0')}`;
    const made: FakeInstance[] = [];
    for (let i = 0; i < count; i++) {
      const n = server.instances.length + 10;
      made.push({
        instanceId: `i-${(seq * 100 + i).toString(16).padStart(17, '0')}`,
        state: 'pending',
        privateIp: `198.19.6.${n}`,
        launchTime: new Date(Date.now() + i).toISOString(),
        tags: { ...tags },
        reservationId,
      });
    }
    server.instances.push(...made);
    const items = made
      .map((m) => `<item><instanceId>${m.instanceId}</instanceId><imageId>ami-0123456789abcdef0</imageId><instanceState><code>0</code><name>pending</name></instanceState><privateIpAddress>${m.privateIp}</privateIpAddress><launchTime>${m.launchTime}</launchTime></item>`)
      .join('');
    return `<?xml version="1.0" encoding="UTF-8"?>\n<RunInstancesResponse xmlns="${NS}"><requestId>${req.requestId}</requestId><reservationId>${reservationId}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>${items}</instancesSet></RunInstancesResponse>`;
  });
  server.actions.set('TerminateInstances', (req: Ec2Request, s) => {
    const ids = Object.entries(req.params).filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
    const items = ids.map((id) => {
      const inst = s.instances.find((i) => i.instanceId === id);
      if (!inst) throw new Ec2FaultError({ status: 400, code: 'InvalidInstanceID.NotFound', message: `The instance ID '${id}' does not exist` });
      const prev = inst.state ?? 'running';
      inst.state = 'terminated';
      return `<item><instanceId>${esc(id)}</instanceId><currentState><code>32</code><name>shutting-down</name></currentState><previousState><code>16</code><name>${prev}</name></previousState></item>`;
    });
    return `<?xml version="1.0" encoding="UTF-8"?>\n<TerminateInstancesResponse xmlns="${NS}"><requestId>${req.requestId}</requestId><instancesSet>${items.join('')}</instancesSet></TerminateInstancesResponse>`;
  });
  return { launches };
}
