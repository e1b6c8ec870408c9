import type { ServiceSpec } from '../frontends/model.js';
import { describeConflict, foreignListeners } from '../runtime/ports.js';
import { haproxyOwners } from './ports.js';
import type { Backend, BackendSet } from '../model/backend.js';
import { inCidrs, parseInstanceId, type ElbListener, type ElbLoadBalancer, type ElbState } from './elb/model.js';
import type { InstanceHealth } from './elb/actions.js';

/**
 * ELB load balancers as HAProxy services (pure): every listener is a service named
 * `elb-<name>-<port>` bound on the API's listen address; its servers are the registered
 * instances: a container (resolved through Docker discovery to its address) on the listener's
 * InstancePort, or IP[:PORT] as given.
 */
export const elbServiceName = (lb: string, port: number) => `elb-${lb}-${port}`;

export function elbSpecs(state: ElbState, opts: { address: string; slots: number }): ServiceSpec[] {
  return state.loadBalancers.flatMap((lb) =>
    lb.listeners.map((l) => {
      const hc = /^(HTTP|TCP):\d+(\/.*)?$/.exec(lb.healthCheck.target);
      return {
        name: elbServiceName(lb.name, l.loadBalancerPort),
        bind: { address: opts.address, port: l.loadBalancerPort },
        mode: l.protocol === 'HTTP' ? 'http' : 'tcp',
        balance: 'roundrobin',
        check: hc?.[1] === 'HTTP' ? { kind: 'http', path: hc[2] ?? '/', intervalMs: lb.healthCheck.interval * 1000 } : { kind: 'tcp', path: '/', intervalMs: lb.healthCheck.interval * 1000 },
        minSlots: opts.slots,
      } satisfies ServiceSpec;
    }),
  );
}

/** A running container by full id, id prefix (>= 12 hex) or name. */
export function findContainer(containers: BackendSet, ref: string): Backend | undefined {
  if (/^[0-9a-f]{12,64}$/.test(ref)) {
    const short = ref.slice(0, 12);
    const hit = containers.find((c) => c.id === `docker:${short}`);
    if (hit) return hit;
  }
  return containers.find((c) => c.name === ref);
}

function backendOf(lb: ElbLoadBalancer, l: ElbListener, instance: string, containers: BackendSet, now: string): Backend | null {
  const ref = parseInstanceId(instance);
  if (ref.kind === 'endpoint') {
    const port = ref.port ?? l.instancePort;
    return { id: `elb:${ref.address}:${port}`, name: instance, service: elbServiceName(lb.name, l.loadBalancerPort), source: 'static', address: ref.address, port, state: 'running', health: 'none', labels: {}, since: now };
  }
  const c = findContainer(containers, ref.ref);
  if (!c) return null;
  return { ...c, id: `${c.id}:${l.instancePort}`, service: elbServiceName(lb.name, l.loadBalancerPort), port: l.instancePort };
}

/**
 * An IP[:PORT] instance is served only inside `api.allow_targets` or at a running container's
 * address: the API must not make HAProxy check and forward to anything a key holder names.
 */
export function targetAllowed(address: string, allow: readonly string[], containers: BackendSet): boolean {
  return inCidrs(address, allow) || containers.some((c) => c.address === address);
}

/** The IP[:PORT] instances among these that are not allowed targets. */
export function forbiddenTargets(ids: readonly string[], allow: readonly string[], containers: BackendSet): string[] {
  return ids.filter((id) => {
    const ref = parseInstanceId(id);
    return ref.kind === 'endpoint' && !targetAllowed(ref.address, allow, containers);
  });
}

/**
 * Backends per ELB service, from the registered instances and the running containers. With
 * `allow` (the daemon always passes it), IP[:PORT] instances outside it are left out: state
 * registered before allow_targets existed, or a CIDR removed since, is not served.
 */
export function elbBackends(state: ElbState, containers: BackendSet, now = new Date().toISOString(), allow?: readonly string[]): Record<string, BackendSet> {
  const out: Record<string, BackendSet> = {};
  for (const lb of state.loadBalancers) {
    for (const l of lb.listeners) {
      const set = lb.instances
        .map((i) => backendOf(lb, l, i, containers, now))
        .filter((b): b is Backend => b !== null && (allow === undefined || b.source !== 'static' || targetAllowed(b.address, allow, containers)));
      const byId = new Map(set.map((b) => [b.id, b]));
      out[elbServiceName(lb.name, l.loadBalancerPort)] = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    }
  }
  return out;
}

/**
 * DescribeInstanceHealth from HAProxy's view: an instance is InService when its server in every
 * listener is UP, OutOfService when one is DOWN or the container is not running, Unknown before
 * HAProxy has checked it.
 */
export function instanceHealth(lb: ElbLoadBalancer, containers: BackendSet, servers: ReadonlyArray<{ service: string; address: string; port: number; status: string }>): InstanceHealth[] {
  return lb.instances.map((id): InstanceHealth => {
    const statuses: string[] = [];
    for (const l of lb.listeners) {
      const b = backendOf(lb, l, id, containers, '');
      if (!b) return { instanceId: id, state: 'OutOfService', reasonCode: 'Instance', description: 'Instance is not a running container.' };
      const s = servers.find((x) => x.service === elbServiceName(lb.name, l.loadBalancerPort) && x.address === b.address && x.port === b.port);
      statuses.push(s?.status ?? 'UNKNOWN');
    }
    if (statuses.length === 0) return { instanceId: id, state: 'Unknown', reasonCode: 'ELB', description: 'The load balancer has no listeners.' };
    if (statuses.some((s) => s.startsWith('DOWN'))) return { instanceId: id, state: 'OutOfService', reasonCode: 'Instance', description: 'Instance has failed at least the UnhealthyThreshold number of health checks consecutively.' };
    if (statuses.every((s) => s.startsWith('UP') || s === 'no check')) return { instanceId: id, state: 'InService', reasonCode: 'N/A', description: 'N/A' };
    return { instanceId: id, state: 'Unknown', reasonCode: 'ELB', description: 'Instance registration is still in progress.' };
  });
}

/**
 * The listener ports another process serves on `address` (impure: the kernel's listening
 * sockets). Ours are the ones the daemon's HAProxy (instance `instance`) and its workers hold.
 */
export async function elbPortsTaken(address: string, instance: string, ports: readonly number[], env?: NodeJS.ProcessEnv): Promise<string[]> {
  const conflicts = await foreignListeners(ports.map((port) => ({ address, port })), await haproxyOwners(instance, env));
  return conflicts.map(describeConflict);
}
