import { describeError } from '../errors.js';
import type { BackendSet } from '../model/backend.js';
import type { RunApplier } from './appliers.js';
import { servedBy, type RunConfig } from './config.js';
import type { ElbState } from './elb/model.js';
import { elbBackends, elbSpecs } from './elb-host.js';
import type { Pipeline } from './pipeline.js';
import type { ReloadResult } from './reload.js';
import type { ActionHandler } from '../runtime/status.js';

/** The daemon's answers on its status socket: the per-service view and the actions (reload, sync, drain). */
export interface DaemonParts {
  readonly config: RunConfig;
  readonly appliers: readonly RunApplier[];
  readonly pipeline: Pipeline | null;
  readonly elbState: ElbState;
  readonly containers: BackendSet;
  readonly deploys: Record<string, unknown>;
  /** routes_from_labels: label services and their containers. */
  readonly labelBackends: Readonly<Record<string, BackendSet>>;
}

const brief = (set: BackendSet) => set.map((b) => ({ id: b.id, name: b.name, address: b.address, port: b.port, health: b.health }));

/** Status socket content per service: what it gets, what is served, and each applier's view. */
export async function servicesView(d: DaemonParts): Promise<Record<string, unknown>> {
  const byApplier = await Promise.all(d.appliers.map(async (a) => [a.name, await a.status().catch((err) => ({ error: describeError(err) }))] as const));
  const out: Record<string, unknown> = {};
  const names = [...d.config.services.map((s) => s.name), ...elbSpecs(d.elbState, d.config.api?.haproxy ?? { address: '127.0.0.1', slots: 8 }).map((s) => s.name), ...Object.keys(d.labelBackends)];
  for (const name of names) {
    const cfg = d.config.services.find((s) => s.name === name);
    const view = d.pipeline?.serviceView(name);
    const labels = d.labelBackends[name];
    out[name] = {
      sources: cfg?.sources ?? (labels ? ['labels'] : ['elb-api']),
      servedBy: cfg ? servedBy(cfg) : [labels ? d.config.routesFromLabels!.proxy : 'haproxy'],
      discovered: view?.discovered ?? (labels ? labels.length : null),
      backends: brief(cfg ? (d.pipeline?.acceptedOf(name) ?? []) : (labels ?? elbBackends(d.elbState, d.containers, undefined, d.config.api?.allowTargets ?? [])[name] ?? [])),
      refused: view?.refused ?? null,
      ...(view?.waiting ? { waiting: view.waiting } : {}),
      appliers: Object.fromEntries(byApplier.filter(([, v]) => (v as Record<string, unknown>)[name] !== undefined).map(([k, v]) => [k, (v as Record<string, unknown>)[name]])),
    };
  }
  // Deploy state under the service of the same name, or on its own entry (served by nothing).
  for (const [name, dep] of Object.entries(d.deploys)) {
    const entry = out[name] as Record<string, unknown> | undefined;
    out[name] = entry ? { ...entry, deploy: dep } : { sources: [], servedBy: [], discovered: null, backends: [], refused: null, appliers: {}, deploy: dep };
  }
  return out;
}

/** The drain contract on the daemon's socket: every applier takes the backend out and waits. */
export async function drainAll(appliers: readonly RunApplier[], args: Record<string, unknown>, event: (message: string) => void): Promise<Record<string, unknown>> {
  const address = String(args.address ?? '');
  const port = Number(args.port);
  const timeoutMs = Number(args.timeoutMs) || 30_000;
  const signal = AbortSignal.timeout(timeoutMs + 5000);
  const results = await Promise.all(appliers.filter((a) => a.drain).map(async (a) => [a.name, await a.drain!({ address, port, timeoutMs }, signal)] as const));
  const drained = results.every(([, r]) => r.drained !== false);
  const remaining = results.reduce((n, [, r]) => n + (Number(r.remaining) || 0), 0);
  event(`${address}:${port} ${drained ? 'drained' : `${remaining} connection(s) remain`}`);
  return { drained, remaining, appliers: Object.fromEntries(results) };
}

/** The actions of the daemon's status socket: `reload` (as SIGHUP), `sync` (every applier's runner), `drain` (drainAll). */
export function daemonActions(d: { reload(): Promise<ReloadResult>; requestAll(reason: string): void; drain(args: Record<string, unknown>): Promise<Record<string, unknown>> }): Record<string, ActionHandler> {
  return {
    reload: async () => {
      const r = await d.reload();
      return { reloaded: r.result === 'applied' || r.result === 'unchanged', ...r };
    },
    sync: async () => {
      d.requestAll('status action');
      return { requested: true };
    },
    drain: async (args) => d.drain(args),
  };
}
