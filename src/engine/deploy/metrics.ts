import { endpoint } from '../model/backend.js';
import { listStatusSockets, requestStatus, type Snapshot } from '../runtime/status.js';
import { needFor, type AutoscaleSpec, type LoadSample } from './autoscale.js';
import type { DeployDocker } from './docker-ops.js';
import type { Replica } from './plan.js';

/**
 * Load for the autoscaler, read from the load balancers elastic runs on this host (their status
 * sockets), with Docker's CPU stats as the fallback. The readers are tolerant: every field is
 * optional and of any type on the wire (the kinds evolve on their own), and a reader that finds
 * nothing for this service returns nothing rather than a zero.
 *
 * - edge (per route): `queued`, `active`, `waitP50Ms`; a route is ours when its name is the
 *   service or one of its nodes' `app` is one of our replicas' address:port.
 * - render (per service): `servers[]` with `sessions`, `queue`, `address`; a server is ours when
 *   its address is one of our replicas (or the render service has our name).
 */
export interface LoadReading {
  readonly concurrency?: number;
  readonly waitP50Ms?: number;
  readonly sources: readonly string[];
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined);

export function readEdge(snap: Snapshot, service: string, endpoints: ReadonlySet<string>): { concurrency: number; waitP50Ms?: number } | undefined {
  let concurrency: number | undefined;
  let wait: number | undefined;
  for (const [route, content] of Object.entries(isObj(snap.services) ? snap.services : {})) {
    if (!isObj(content)) continue;
    const nodes = Array.isArray(content.nodeList) ? content.nodeList : Array.isArray(content.nodes) ? content.nodes : [];
    const ours = route === service || nodes.some((n) => isObj(n) && typeof n.app === 'string' && endpoints.has(n.app));
    if (!ours) continue;
    const q = num(content.queued) ?? 0;
    const a = num(content.active) ?? 0;
    concurrency = (concurrency ?? 0) + q + a;
    const w = num(content.waitP50Ms) ?? num(isObj(content.wait) ? content.wait.p50 : undefined);
    if (w !== undefined) wait = Math.max(wait ?? 0, w);
  }
  return concurrency === undefined ? undefined : { concurrency, waitP50Ms: wait };
}

export function readRender(snap: Snapshot, service: string, endpoints: ReadonlySet<string>): { concurrency: number } | undefined {
  let concurrency: number | undefined;
  for (const [name, content] of Object.entries(isObj(snap.services) ? snap.services : {})) {
    if (!isObj(content) || !Array.isArray(content.servers)) continue;
    for (const s of content.servers) {
      if (!isObj(s)) continue;
      const addr = typeof s.address === 'string' ? s.address : typeof s.addr === 'string' ? s.addr : '';
      if (!endpoints.has(addr) && name !== service) continue;
      concurrency = (concurrency ?? 0) + (num(s.sessions) ?? num(s.scur) ?? 0) + (num(s.queue) ?? num(s.qcur) ?? 0);
    }
  }
  return concurrency === undefined ? undefined : { concurrency };
}

export async function readLoad(service: string, replicas: readonly Replica[], port: number | undefined, runDir?: string): Promise<LoadReading> {
  const endpoints = new Set(replicas.filter((r) => r.address && port).map((r) => endpoint({ address: r.address!, port: port! })));
  const sockets = (await listStatusSockets(runDir)).filter((s) => s.kind === 'edge' || s.kind === 'render');
  let concurrency: number | undefined;
  let wait: number | undefined;
  const sources: string[] = [];
  await Promise.all(
    sockets.map(async (s) => {
      let snap: Snapshot;
      try {
        snap = await requestStatus<Snapshot>(s.path, { op: 'snapshot' }, 1500);
      } catch {
        return; // a dead or busy socket: no reading from it this time
      }
      const r = s.kind === 'edge' ? readEdge(snap, service, endpoints) : readRender(snap, service, endpoints);
      if (!r) return;
      sources.push(`${s.kind}.${s.name}`);
      concurrency = (concurrency ?? 0) + r.concurrency;
      const w = (r as { waitP50Ms?: number }).waitP50Ms;
      if (w !== undefined) wait = Math.max(wait ?? 0, w);
    }),
  );
  return { concurrency, waitP50Ms: wait, sources: sources.sort() };
}

/** One sample for the policy: the configured metric from the load balancers, else CPU. */
export async function sampleLoad(spec: AutoscaleSpec, service: string, replicas: readonly Replica[], port: number | undefined, ops: DeployDocker, now: number, runDir?: string): Promise<LoadSample | null> {
  const running = replicas.filter((r) => r.state === 'running');
  if (spec.metric !== 'cpu') {
    const r = await readLoad(service, running, port, runDir);
    const value = spec.metric === 'concurrency' ? r.concurrency : r.waitP50Ms;
    if (value !== undefined) return { at: now, metric: spec.metric, value, need: needFor(spec.metric, value, spec.target, running.length), source: r.sources.join(',') };
  }
  const cpus = (await Promise.all(running.map((r) => ops.cpuPercent(r.id)))).filter((x): x is number => x !== undefined);
  if (cpus.length === 0) return null;
  const value = cpus.reduce((s, x) => s + x, 0) / cpus.length;
  const target = spec.metric === 'cpu' ? spec.target : spec.cpuFallback;
  return { at: now, metric: 'cpu', value, need: needFor('cpu', value, target, running.length), source: 'docker stats' };
}
