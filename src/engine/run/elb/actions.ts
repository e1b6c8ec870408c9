import { ExitCode, UserError } from '../../errors.js';
import { updateState, type StateStore } from '../../runtime/state-store.js';
import {
  EMPTY_ELB,
  ELB_STATE_KEY,
  ElbError,
  checkName,
  configureHealthCheck,
  createListeners,
  createLoadBalancer,
  deleteListeners,
  deleteLoadBalancer,
  deregisterInstances,
  find,
  parseHealthCheck,
  parseListener,
  registerInstances,
  type ElbLoadBalancer,
  type ElbState,
} from './model.js';
import type { XmlValue } from './xml.js';

/**
 * The nine actions of the Classic ELB API we serve: query parameters in, (new state, result
 * object) out. The state is read and written through the state store (key `elb`), one mutation
 * at a time; the daemon is told after every change so HAProxy follows, also a change another
 * fleet host made (the store's watch, when it has one).
 */
export const ACTIONS = [
  'CreateLoadBalancer',
  'DeleteLoadBalancer',
  'DescribeLoadBalancers',
  'CreateLoadBalancerListeners',
  'DeleteLoadBalancerListeners',
  'RegisterInstancesWithLoadBalancer',
  'DeregisterInstancesFromLoadBalancer',
  'DescribeInstanceHealth',
  'ConfigureHealthCheck',
] as const;
export type ElbAction = (typeof ACTIONS)[number];

export interface InstanceHealth {
  readonly instanceId: string;
  readonly state: 'InService' | 'OutOfService' | 'Unknown';
  readonly reasonCode: 'ELB' | 'Instance' | 'N/A';
  readonly description: string;
}

/** What the daemon provides: host facts the pure model cannot know. */
export interface ElbHost {
  /** Ports on this host that elastic.yaml already uses (listeners must not take them). */
  reservedPorts(): ReadonlySet<number>;
  /** Of these listener ports, the ones another process listens on (one line each; [] when free). */
  portsTaken(ports: readonly number[]): Promise<string[]>;
  /** The instance ids among these that do not exist (no such running container). */
  unknownInstances(ids: readonly string[]): Promise<string[]>;
  /** The IP[:PORT] instances among these outside api.allow_targets (and not a container's address). */
  forbiddenTargets(ids: readonly string[]): string[];
  health(lb: ElbLoadBalancer): Promise<InstanceHealth[]>;
  /** The address clients use for this load balancer's listeners. */
  dnsName(lb: ElbLoadBalancer): string;
  onChange(state: ElbState): void;
  /**
   * Listeners in the stored state this host does not serve, because another process holds their
   * port here (another fleet host created them): one line each; [] when every listener is served.
   */
  refused?(problems: readonly string[]): void;
}

export type Params = ReadonlyMap<string, string>;

/** `Prefix.member.N` values in N order. */
export function members(params: Params, prefix: string): string[] {
  const out: Array<[number, string]> = [];
  const re = new RegExp(`^${prefix}\\.member\\.(\\d{1,4})$`);
  for (const [k, v] of params) {
    const m = re.exec(k);
    if (m) out.push([Number(m[1]), v]);
  }
  return out.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** `Prefix.member.N.Field` structures in N order. */
export function structs(params: Params, prefix: string): Array<Record<string, string>> {
  const by = new Map<number, Record<string, string>>();
  const re = new RegExp(`^${prefix}\\.member\\.(\\d{1,4})\\.([A-Za-z]+)$`);
  for (const [k, v] of params) {
    const m = re.exec(k);
    if (m) (by.get(Number(m[1])) ?? by.set(Number(m[1]), {}).get(Number(m[1]))!)[m[2]!] = v;
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

function sub(params: Params, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of params) if (k.startsWith(`${prefix}.`)) out[k.slice(prefix.length + 1)] = v;
  return out;
}

const ports = (s: ElbState) => new Set(s.loadBalancers.flatMap((lb) => lb.listeners.map((l) => l.loadBalancerPort)));

export class ElbService {
  private chain: Promise<unknown> = Promise.resolve();
  /** The state last handed to the daemon (JSON), so a watch echo of our own write is not news. */
  private told = '';
  private problems: string[] = [];

  constructor(
    private readonly store: StateStore,
    private readonly host: ElbHost,
  ) {
    store.watch?.(ELB_STATE_KEY, () => void this.refresh());
  }

  async state(): Promise<ElbState> {
    const s = await this.store.get<ElbState>(ELB_STATE_KEY);
    return s?.v === 1 ? s : EMPTY_ELB;
  }

  /** One mutation at a time: read, change (pure), write, tell the daemon. */
  private mutate(fn: (s: ElbState) => ElbState | Promise<ElbState>): Promise<ElbState> {
    const run = this.chain.then(async () => {
      let after: ElbState = EMPTY_ELB;
      let changed = false;
      // In a fleet `fn` runs again when another host wrote in between (compare-and-swap).
      await updateState<ElbState>(this.store, ELB_STATE_KEY, async (stored) => {
        const before = stored?.v === 1 ? stored : EMPTY_ELB;
        after = await fn(before);
        changed = after !== before;
        return changed ? after : stored;
      }).catch((err) => {
        // A fleet host whose store is unreachable: nothing changed anywhere; the client may retry.
        throw err instanceof UserError && err.exitCode === ExitCode.unavailable ? new ElbError('ServiceUnavailable', `${err.message.slice(0, 200)}; nothing was changed`, 503) : err;
      });
      if (changed) await this.tell(after);
      return after;
    });
    this.chain = run.catch(() => {});
    return run;
  }

  /** Another host may have changed the state: re-read it and, if it is new here, tell the daemon. */
  refresh(): Promise<void> {
    const run = this.chain.then(async () => {
      await this.tell(await this.state());
    });
    // The store unreachable: the daemon keeps the state it has (the watch calls again on return).
    this.chain = run.catch(() => {});
    return this.chain as Promise<void>;
  }

  /** The stored state as this host serves it (see servable), for the daemon's start and reload. */
  async served(): Promise<ElbState> {
    return (await this.servable(await this.state())).out;
  }

  /**
   * The state this host is to serve: all of it, but a listener new here whose port another
   * process holds on this host (possible when another fleet host created it) is left out and
   * reported; the rest is served. It is checked again with the next change.
   */
  private async servable(s: ElbState): Promise<{ out: ElbState; problems: string[] }> {
    const served = ports(this.told ? (JSON.parse(this.told) as ElbState) : EMPTY_ELB);
    const problems: string[] = [];
    const skip = new Set<number>();
    for (const p of ports(s)) {
      if (served.has(p)) continue;
      const taken = await this.host.portsTaken([p]);
      if (taken.length) {
        skip.add(p);
        problems.push(...taken);
      }
    }
    const out = skip.size ? { ...s, loadBalancers: s.loadBalancers.map((lb) => ({ ...lb, listeners: lb.listeners.filter((l) => !skip.has(l.loadBalancerPort)) })) } : s;
    return { out, problems };
  }

  /** Hand the daemon what it is to serve of `s`, when that changed. */
  private async tell(s: ElbState): Promise<void> {
    const { out, problems } = await this.servable(s);
    if (problems.join() !== this.problems.join()) this.host.refused?.(problems);
    this.problems = problems;
    const json = JSON.stringify(out);
    if (json === this.told) return;
    this.told = json;
    this.host.onChange(out);
  }

  /** A new listener port someone else serves is refused before anything is stored or rendered. */
  private async checkNewPorts(before: ElbState, after: ElbState): Promise<ElbState> {
    const old = ports(before);
    const added = [...ports(after)].filter((p) => !old.has(p));
    const taken = added.length ? await this.host.portsTaken(added) : [];
    if (taken.length) throw new ElbError('InvalidConfigurationRequest', `LoadBalancerPort in use on this host: ${taken.join('; ').slice(0, 300)}`, 409);
    return after;
  }

  private describe(lb: ElbLoadBalancer): { [k: string]: XmlValue } {
    return {
      LoadBalancerName: lb.name,
      DNSName: this.host.dnsName(lb),
      ListenerDescriptions: lb.listeners.map((l) => ({ Listener: { Protocol: l.protocol, LoadBalancerPort: l.loadBalancerPort, InstanceProtocol: l.instanceProtocol, InstancePort: l.instancePort }, PolicyNames: [] })),
      Policies: { AppCookieStickinessPolicies: [], LBCookieStickinessPolicies: [], OtherPolicies: [] },
      BackendServerDescriptions: [],
      AvailabilityZones: [...lb.availabilityZones],
      Subnets: [],
      Instances: lb.instances.map((id) => ({ InstanceId: id })),
      HealthCheck: { Target: lb.healthCheck.target, Interval: lb.healthCheck.interval, Timeout: lb.healthCheck.timeout, UnhealthyThreshold: lb.healthCheck.unhealthyThreshold, HealthyThreshold: lb.healthCheck.healthyThreshold },
      SourceSecurityGroup: { OwnerAlias: 'elastic', GroupName: 'default' },
      SecurityGroups: [],
      CreatedTime: lb.created,
      Scheme: 'internal',
    };
  }

  async handle(action: string, params: Params): Promise<{ [k: string]: XmlValue } | null> {
    const name = () => checkName(params.get('LoadBalancerName'));
    switch (action as ElbAction) {
      case 'CreateLoadBalancer': {
        const listeners = structs(params, 'Listeners').map(parseListener);
        const n = name();
        await this.mutate((s) => this.checkNewPorts(s, createLoadBalancer(s, n, listeners, members(params, 'AvailabilityZones'), this.host.reservedPorts())));
        return { DNSName: this.host.dnsName(find(await this.state(), n)) };
      }
      case 'DeleteLoadBalancer': {
        const n = name();
        await this.mutate((s) => deleteLoadBalancer(s, n));
        return {};
      }
      case 'DescribeLoadBalancers': {
        const names = members(params, 'LoadBalancerNames');
        const state = await this.state();
        const lbs = names.length ? names.map((n) => find(state, n)) : [...state.loadBalancers];
        const size = params.has('PageSize') ? Number(params.get('PageSize')) : 400;
        if (!Number.isInteger(size) || size < 1 || size > 400) throw new ElbError('ValidationError', 'PageSize must be 1-400');
        const start = params.has('Marker') ? Number.parseInt(Buffer.from(params.get('Marker')!, 'base64').toString('utf8'), 10) : 0;
        if (!Number.isInteger(start) || start < 0) throw new ElbError('ValidationError', 'Invalid Marker');
        const page = lbs.slice(start, start + size);
        const next = start + size < lbs.length ? Buffer.from(String(start + size)).toString('base64') : undefined;
        return { LoadBalancerDescriptions: page.map((lb) => this.describe(lb)), NextMarker: next };
      }
      case 'CreateLoadBalancerListeners': {
        const n = name();
        const listeners = structs(params, 'Listeners').map(parseListener);
        await this.mutate((s) => this.checkNewPorts(s, createListeners(s, n, listeners, this.host.reservedPorts())));
        return {};
      }
      case 'DeleteLoadBalancerListeners': {
        const n = name();
        const ports = members(params, 'LoadBalancerPorts').map(Number);
        if (ports.length === 0 || ports.some((p) => !(p >= 1 && p <= 65535))) throw new ElbError('ValidationError', 'LoadBalancerPorts must list ports 1-65535');
        await this.mutate((s) => deleteListeners(s, n, ports));
        return {};
      }
      case 'RegisterInstancesWithLoadBalancer': {
        const n = name();
        const ids = structs(params, 'Instances').map((i) => i.InstanceId ?? '');
        if (ids.length === 0 || ids.some((i) => !i)) throw new ElbError('ValidationError', 'Instances is required');
        const after = await this.mutate(async (s) => {
          const next = registerInstances(s, n, ids); // validates the ids' form and the name first
          const unknown = await this.host.unknownInstances(ids);
          if (unknown.length) throw new ElbError('InvalidInstance', `The following instances are not running containers: ${unknown.join(', ').slice(0, 300)}`);
          const forbidden = this.host.forbiddenTargets(ids);
          if (forbidden.length) throw new ElbError('InvalidInstance', `The following instances are neither running containers nor inside api.allow_targets: ${forbidden.join(', ').slice(0, 300)}`);
          return next;
        });
        return { Instances: find(after, n).instances.map((id) => ({ InstanceId: id })) };
      }
      case 'DeregisterInstancesFromLoadBalancer': {
        const n = name();
        const ids = structs(params, 'Instances').map((i) => i.InstanceId ?? '');
        if (ids.length === 0) throw new ElbError('ValidationError', 'Instances is required');
        const after = await this.mutate((s) => deregisterInstances(s, n, ids));
        return { Instances: find(after, n).instances.map((id) => ({ InstanceId: id })) };
      }
      case 'DescribeInstanceHealth': {
        const lb = find(await this.state(), name());
        const asked = structs(params, 'Instances').map((i) => i.InstanceId ?? '');
        const unknown = asked.filter((id) => !lb.instances.includes(id));
        if (unknown.length) throw new ElbError('InvalidInstance', `Could not find EC2 instance ${unknown[0]!.slice(0, 80)}.`);
        const states = await this.host.health(lb);
        const pick = asked.length ? states.filter((s) => asked.includes(s.instanceId)) : states;
        return { InstanceStates: pick.map((s) => ({ InstanceId: s.instanceId, State: s.state, ReasonCode: s.reasonCode, Description: s.description })) };
      }
      case 'ConfigureHealthCheck': {
        const n = name();
        const hc = parseHealthCheck(sub(params, 'HealthCheck'));
        await this.mutate((s) => configureHealthCheck(s, n, hc));
        return { HealthCheck: { Target: hc.target, Interval: hc.interval, Timeout: hc.timeout, UnhealthyThreshold: hc.unhealthyThreshold, HealthyThreshold: hc.healthyThreshold } };
      }
      default:
        throw new ElbError('InvalidAction', `The action ${action.slice(0, 60)} is not valid for this web service.`);
    }
  }
}
