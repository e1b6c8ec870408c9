import type { FleetHost, HostPorts } from './fleet.js';
import { docker, TEST_IMAGE } from './docker.js';

/**
 * `deploys:` in a fleet, for the fleet-deploys test and bench/fleet/leader-resume.ts: a fleet file
 * whose deploy has 2 replicas of the test image on a Docker network of the test's own; what each
 * host logged about container changes (--log-json); every Docker event of the service, with the
 * time it was seen.
 */
export function deployFleetConfig(o: { name: string; service: string; network: string; port: number; hosts: readonly HostPorts[]; version: number; replicas?: number; image?: string; mode?: 'http' | 'tcp' }): string {
  return `version: 1
name: ${o.name}
sources:
  deployed:
    docker: { label: ["elastic.service=${o.service}"], port: 80, network: ${o.network} }
services:
  - name: ${o.service}
    sources: [deployed]
    guardrails: { min_backends: 1, max_change: 100 }
    haproxy: { port: ${o.port}, mode: ${o.mode ?? 'http'} }
deploys:
  - { service: ${o.service}, image: ${o.image ?? TEST_IMAGE}, replicas: ${o.replicas ?? 2}, port: 80, health: tcp, network: ${o.network}, env: ["V=${o.version}"] }
sync: { min_interval_ms: 50 }
hosts:
${o.hosts.map((h) => `  ${h.name}:\n    services:\n      ${o.service}: { haproxy: { port: ${h.haproxy} } }\n    metrics: { prometheus: { port: ${h.metrics} } }`).join('\n')}
`;
}

export type Line = { time: string; msg: string; id?: string; revision?: string; gate?: string };

export const linesOf = (h: FleetHost, from = 0): Line[] =>
  h.err!.lines.slice(from).flatMap((l) => {
    try {
      return [JSON.parse(l) as Line];
    } catch {
      return [];
    }
  });
/** Containers the host created, stopped or removed (run/deploys.ts logs each). */
export const changes = (h: FleetHost, from = 0) => linesOf(h, from).filter((l) => l.msg.startsWith('replica ') && / (created|stopping|removed)$/.test(l.msg));
export const gates = (h: FleetHost, from = 0) => linesOf(h, from).filter((l) => l.msg.endsWith('passed its health gate'));
/** When the host's deploy pass began after `t0` (epoch ms), or Infinity. */
export const resumedAt = (h: FleetHost, service: string, t0: number) => Math.min(...linesOf(h).filter((l) => l.msg.startsWith(`reconciling ${service}`) && Date.parse(l.time) >= t0).map((l) => Date.parse(l.time)));

export interface ContainerEvent {
  readonly t: number;
  readonly action: string;
  readonly id: string;
  readonly signal?: string;
}

/** Docker events of the service's containers, from now on. */
export class ServiceEvents {
  readonly list: ContainerEvent[] = [];
  private stream: NodeJS.ReadableStream | null = null;

  constructor(private readonly service: string) {}

  async start(): Promise<void> {
    this.stream = (await docker.getEvents({ filters: JSON.stringify({ type: ['container'], label: [`elastic.service=${this.service}`] }) })) as NodeJS.ReadableStream;
    let buf = '';
    this.stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const e = JSON.parse(buf.slice(0, nl)) as { Action: string; id: string; Actor?: { Attributes?: Record<string, string> } };
        buf = buf.slice(nl + 1);
        this.list.push({ t: Date.now(), action: e.Action, id: e.id.slice(0, 12), signal: e.Actor?.Attributes?.signal });
      }
    });
  }

  /** The first event of `id` among `actions`. */
  first(id: string, ...actions: string[]): ContainerEvent | undefined {
    return this.list.find((e) => e.id === id && actions.includes(e.action));
  }

  stop(): void {
    (this.stream as unknown as { destroy?: () => void } | null)?.destroy?.();
  }
}

/** The service's containers: id, state, the V= of their env (the pushed version), labels. */
export async function replicas(service: string) {
  const list = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`elastic.service=${service}`] }) });
  return Promise.all(
    list.map(async (c) => {
      const info = await docker.getContainer(c.Id).inspect();
      return { id: c.Id.slice(0, 12), state: c.State, v: (info.Config.Env ?? []).find((e) => e.startsWith('V='))?.slice(2), labels: c.Labels };
    }),
  );
}

/** Both replicas of version `v` running and past their gate (logged by one of `hosts`). */
export async function convergedOn(service: string, hosts: readonly FleetHost[], v: number): Promise<boolean> {
  const mine = (await replicas(service)).filter((r) => r.v === String(v) && r.state === 'running');
  const passed = new Set(hosts.flatMap((h) => (h.err ? gates(h).map((l) => l.id) : [])));
  return mine.length === 2 && mine.every((r) => passed.has(r.id));
}

export async function removeDeployed(service: string): Promise<void> {
  const all = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`elastic.service=${service}`] }) });
  await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
}

/** A Docker network of the caller's own (its subnet in 198.18.0.0/15), replaced if left over. */
export async function makeNetwork(name: string, subnet: string): Promise<void> {
  await docker.getNetwork(name).remove().catch(() => {});
  await docker.createNetwork({ Name: name, IPAM: { Config: [{ Subnet: subnet }] }, Labels: { 'elastic.test': 'fleet-deploys' } });
}

/**
 * The kill -9 measurement, from `t0` (the kill): when the new leader's deploy pass began, when the
 * rollout to `v` was done (both replicas past their gate, every older replica signalled to stop:
 * waiting out a stop timeout after that is Docker's), and what of it was health gates and Docker
 * creating and starting containers (work the rollout has left whoever leads).
 */
export function resumeTimes(o: { service: string; next: FleetHost; old: FleetHost; oldFrom: number; events: ServiceEvents; t0: number; revision: string; older: readonly string[] }) {
  const { next, events, t0 } = o;
  const lastGate = Math.max(...[...gates(next), ...gates(o.old, o.oldFrom)].filter((l) => l.revision === o.revision).map((l) => Date.parse(l.time)));
  const lastStop = Math.max(0, ...o.older.map((id) => events.first(id, 'kill', 'destroy')?.t ?? Infinity));
  const gateMs = gates(next).filter((l) => Date.parse(l.time) >= t0).reduce((a, l) => a + Number.parseInt(l.gate ?? '0', 10), 0);
  const dockerMs = changes(next)
    .filter((l) => Date.parse(l.time) >= t0 && l.msg.endsWith(' created'))
    .reduce((a, l) => a + (events.first(l.id!, 'start')?.t ?? 0) - (events.first(l.id!, 'create')?.t ?? 0), 0);
  const done = Math.max(lastGate, lastStop) - t0;
  return { resume: resumedAt(next, o.service, t0) - t0, done, gateMs, dockerMs, besides: done - gateMs - dockerMs };
}

/** What `host` logged and Docker did from `t0` on, one line each, in ms since `t0`. */
export function timeline(host: FleetHost, events: ServiceEvents, t0: number): string {
  return [
    ...linesOf(host).filter((l) => Date.parse(l.time) >= t0 && !l.msg.startsWith('applied')).map((l) => ({ t: Date.parse(l.time) - t0, what: `${host.name}: ${l.msg} ${l.id ?? ''}` })),
    ...events.list.filter((e) => e.t >= t0).map((e) => ({ t: e.t - t0, what: `docker: ${e.action} ${e.id} ${e.signal ?? ''}` })),
  ]
    .sort((a, b) => a.t - b.t)
    .map((x) => `${x.t} ${x.what}`)
    .join('\n');
}
