import { isIP } from 'node:net';

/**
 * The ELB API's state, pure: load balancers with listeners, registered instances and a health
 * check. Every operation returns the new state or throws an ElbError with the AWS error code a
 * client expects. Persisted as the state-store key `elb`.
 */
export type ElbProtocol = 'HTTP' | 'TCP';

export interface ElbListener {
  readonly protocol: ElbProtocol;
  readonly loadBalancerPort: number;
  readonly instanceProtocol: ElbProtocol;
  readonly instancePort: number;
}

export interface ElbHealthCheck {
  /** TCP:PORT, HTTP:PORT/PATH (HTTPS and SSL are refused). */
  readonly target: string;
  readonly interval: number;
  readonly timeout: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

export interface ElbLoadBalancer {
  readonly name: string;
  readonly created: string;
  readonly listeners: readonly ElbListener[];
  /** Container IDs (or names) and ip:port, as registered. */
  readonly instances: readonly string[];
  readonly healthCheck: ElbHealthCheck;
  readonly availabilityZones: readonly string[];
}

export interface ElbState {
  readonly v: 1;
  readonly loadBalancers: readonly ElbLoadBalancer[];
}

export const EMPTY_ELB: ElbState = { v: 1, loadBalancers: [] };
export const ELB_STATE_KEY = 'elb';
export const MAX_LOAD_BALANCERS = 100;

export class ElbError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const LB_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$/;
/** Docker container: 12-64 hex id, or a container name. ip:port or a bare IPv4 address. */
const CONTAINER = /^(?:[0-9a-f]{12,64}|[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/;

export function checkName(name: string | undefined): string {
  if (!name) throw new ElbError('ValidationError', 'LoadBalancerName is required');
  if (!LB_NAME.test(name)) throw new ElbError('ValidationError', 'LoadBalancerName must be 1-32 letters, digits and hyphens, and must not begin or end with a hyphen');
  return name;
}

/** An IPv4 CIDR as [network, mask] (null when it is not one). */
export function parseCidr(text: string): [number, number] | null {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text);
  if (!m || isIP(m[1]!) !== 4 || Number(m[2]) > 32) return null;
  const mask = Number(m[2]) === 0 ? 0 : (~0 << (32 - Number(m[2]))) >>> 0;
  return [(ipv4Number(m[1]!) & mask) >>> 0, mask];
}

const ipv4Number = (ip: string) => ip.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);

/** Is this IPv4 address inside one of these CIDRs? */
export function inCidrs(address: string, cidrs: readonly string[]): boolean {
  if (isIP(address) !== 4) return false;
  const a = ipv4Number(address);
  return cidrs.some((c) => {
    const net = parseCidr(c);
    return net !== null && ((a & net[1]) >>> 0) === net[0];
  });
}

export type InstanceRef = { kind: 'container'; ref: string } | { kind: 'endpoint'; address: string; port?: number };

export function parseInstanceId(id: string): InstanceRef {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(id);
  if (m && isIP(m[1]!) === 4) {
    const port = m[2] === undefined ? undefined : Number(m[2]);
    if (port !== undefined && !(port >= 1 && port <= 65535)) throw new ElbError('InvalidInstance', `Invalid instance port in ${id}`);
    return { kind: 'endpoint', address: m[1]!, port };
  }
  if (CONTAINER.test(id)) return { kind: 'container', ref: id };
  throw new ElbError('InvalidInstance', `InstanceId ${id.slice(0, 80)} is not a container ID, a container name, or IP[:PORT]`);
}

function parseProtocol(p: string | undefined, what: string): ElbProtocol {
  const u = (p ?? '').toUpperCase();
  if (u === 'HTTP' || u === 'TCP') return u;
  if (u === 'HTTPS' || u === 'SSL') throw new ElbError('UnsupportedProtocol', `${what} ${u} needs certificates, which this API does not manage; use HTTP or TCP`);
  throw new ElbError('ValidationError', `${what} must be HTTP or TCP`);
}

function parsePortValue(v: string | undefined, what: string): number {
  const n = v !== undefined && /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new ElbError('ValidationError', `${what} must be 1-65535`);
  return n;
}

export function parseListener(raw: Readonly<Record<string, string>>): ElbListener {
  const protocol = parseProtocol(raw.Protocol, 'Protocol');
  const instanceProtocol = raw.InstanceProtocol ? parseProtocol(raw.InstanceProtocol, 'InstanceProtocol') : protocol;
  if (protocol !== instanceProtocol) throw new ElbError('ValidationError', 'InstanceProtocol must match Protocol (HTTP to HTTP, TCP to TCP)');
  return { protocol, loadBalancerPort: parsePortValue(raw.LoadBalancerPort, 'LoadBalancerPort'), instanceProtocol, instancePort: parsePortValue(raw.InstancePort, 'InstancePort') };
}

export function parseHealthCheck(raw: Readonly<Record<string, string>>): ElbHealthCheck {
  const target = raw.Target ?? '';
  const m = /^(HTTP|TCP):(\d{1,5})(\/[A-Za-z0-9/._~?=&%+-]*)?$/.exec(target);
  if (!m || (m[1] === 'HTTP' && !m[3]) || (m[1] === 'TCP' && m[3])) throw new ElbError('ValidationError', 'HealthCheck.Target must be TCP:PORT or HTTP:PORT/PATH');
  parsePortValue(m[2], 'HealthCheck.Target port');
  const num = (k: string, lo: number, hi: number) => {
    const n = Number(raw[k]);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new ElbError('ValidationError', `HealthCheck.${k} must be ${lo}-${hi}`);
    return n;
  };
  const hc = { target, interval: num('Interval', 5, 300), timeout: num('Timeout', 2, 60), unhealthyThreshold: num('UnhealthyThreshold', 2, 10), healthyThreshold: num('HealthyThreshold', 2, 10) };
  if (hc.timeout >= hc.interval) throw new ElbError('ValidationError', 'HealthCheck.Timeout must be less than Interval');
  return hc;
}

export const defaultHealthCheck = (l: ElbListener | undefined): ElbHealthCheck => ({
  target: `TCP:${l?.instancePort ?? 80}`,
  interval: 30,
  timeout: 5,
  unhealthyThreshold: 2,
  healthyThreshold: 10,
});

export function find(state: ElbState, name: string): ElbLoadBalancer {
  const lb = state.loadBalancers.find((l) => l.name === name);
  if (!lb) throw new ElbError('LoadBalancerNotFound', `There is no ACTIVE Load Balancer named '${name}'`);
  return lb;
}

const replace = (state: ElbState, lb: ElbLoadBalancer): ElbState => ({ ...state, loadBalancers: [...state.loadBalancers.filter((l) => l.name !== lb.name), lb].sort((a, b) => (a.name < b.name ? -1 : 1)) });

/** Every listener port in use, by load balancer name (ports are host ports: they must be unique). */
function portOwners(state: ElbState): Map<number, string> {
  const m = new Map<number, string>();
  for (const lb of state.loadBalancers) for (const l of lb.listeners) m.set(l.loadBalancerPort, lb.name);
  return m;
}

function addListeners(state: ElbState, lb: ElbLoadBalancer, listeners: readonly ElbListener[], reserved: ReadonlySet<number>): ElbLoadBalancer {
  const owners = portOwners(state);
  const out = [...lb.listeners];
  for (const l of listeners) {
    const same = out.find((x) => x.loadBalancerPort === l.loadBalancerPort);
    if (same) {
      if (same.protocol === l.protocol && same.instancePort === l.instancePort) continue; // idempotent, as AWS
      throw new ElbError('DuplicateListener', `A listener already exists for ${lb.name} with LoadBalancerPort ${l.loadBalancerPort}, but with a different InstancePort, Protocol, or SSLCertificateId`);
    }
    const owner = owners.get(l.loadBalancerPort);
    if ((owner && owner !== lb.name) || reserved.has(l.loadBalancerPort)) {
      throw new ElbError('InvalidConfigurationRequest', `LoadBalancerPort ${l.loadBalancerPort} is already used on this host${owner ? ` by ${owner}` : ''}`, 409);
    }
    out.push(l);
  }
  return { ...lb, listeners: out.sort((a, b) => a.loadBalancerPort - b.loadBalancerPort) };
}

export function createLoadBalancer(state: ElbState, name: string, listeners: readonly ElbListener[], zones: readonly string[], reserved: ReadonlySet<number>, now = new Date()): ElbState {
  checkName(name);
  if (listeners.length === 0) throw new ElbError('ValidationError', 'Listeners is required');
  const existing = state.loadBalancers.find((l) => l.name === name);
  if (existing) {
    const sameListeners = listeners.every((l) => existing.listeners.some((x) => x.loadBalancerPort === l.loadBalancerPort && x.protocol === l.protocol && x.instancePort === l.instancePort));
    if (sameListeners) return state; // CreateLoadBalancer is idempotent for the same definition
    throw new ElbError('DuplicateLoadBalancerName', `Load Balancer named '${name}' already exists and it is configured with different parameters.`);
  }
  if (state.loadBalancers.length >= MAX_LOAD_BALANCERS) throw new ElbError('TooManyLoadBalancers', `Exceeded the quota of ${MAX_LOAD_BALANCERS} load balancers`);
  const empty: ElbLoadBalancer = { name, created: now.toISOString(), listeners: [], instances: [], healthCheck: defaultHealthCheck(listeners[0]), availabilityZones: [...zones] };
  return replace(state, addListeners(state, empty, listeners, reserved));
}

export function deleteLoadBalancer(state: ElbState, name: string): ElbState {
  return { ...state, loadBalancers: state.loadBalancers.filter((l) => l.name !== name) }; // idempotent, as AWS
}

export function createListeners(state: ElbState, name: string, listeners: readonly ElbListener[], reserved: ReadonlySet<number>): ElbState {
  if (listeners.length === 0) throw new ElbError('ValidationError', 'Listeners is required');
  return replace(state, addListeners(state, find(state, name), listeners, reserved));
}

export function deleteListeners(state: ElbState, name: string, ports: readonly number[]): ElbState {
  const lb = find(state, name);
  const drop = new Set(ports);
  return replace(state, { ...lb, listeners: lb.listeners.filter((l) => !drop.has(l.loadBalancerPort)) });
}

export function registerInstances(state: ElbState, name: string, ids: readonly string[]): ElbState {
  const lb = find(state, name);
  for (const id of ids) parseInstanceId(id);
  const instances = [...lb.instances];
  for (const id of ids) if (!instances.includes(id)) instances.push(id);
  return replace(state, { ...lb, instances });
}

export function deregisterInstances(state: ElbState, name: string, ids: readonly string[]): ElbState {
  const lb = find(state, name);
  const unknown = ids.filter((id) => !lb.instances.includes(id));
  if (unknown.length) throw new ElbError('InvalidInstance', `The specified instances are not registered with ${name}: ${unknown.join(', ').slice(0, 200)}`);
  return replace(state, { ...lb, instances: lb.instances.filter((i) => !ids.includes(i)) });
}

export function configureHealthCheck(state: ElbState, name: string, hc: ElbHealthCheck): ElbState {
  return replace(state, { ...find(state, name), healthCheck: hc });
}
