import { adaptFleet } from './fleet.js';
import type { Snapshot } from '../runtime/status.js';
import { printable } from '../model/validate.js';
import type { BackendSample, Counters, ServiceSample, SourceEvent, SourceSample } from './model.js';

/**
 * One small adapter per status-socket kind: Snapshot -> SourceSample. Every field is optional on
 * the wire (the kinds evolve independently, and a socket may be an older or newer elastic), so
 * adapters read with fallbacks and never throw on shape; unknown kinds go through the generic
 * adapter, which shows whatever backends and numbers it recognises.
 */
type Obj = Record<string, unknown>;

const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
export const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : typeof x === 'string' && /^\d+(\.\d+)?$/.test(x) ? Number(x) : undefined);
const str = (x: unknown, max = 80): string | undefined => (typeof x === 'string' && x !== '' ? printable(x, max) : typeof x === 'number' ? String(x) : undefined);

/** Row keys join parts with `/` (store.ts): keep it out of the parts. */
const keyPart = (s: string) => s.replace(/\//g, '_');

const splitPaths = new Map<string, string[]>();
const splitPath = (p: string) => splitPaths.get(p) ?? (splitPaths.set(p, p.split('.')), splitPaths.get(p)!);

/** The first present value among paths (`wait.p50` is a nested path): `pick(o, 'wait.p50', 'waitP50')`. */
function pick(o: Obj, ...paths: string[]): unknown {
  for (const p of paths) {
    let cur: unknown;
    // Hot path (1,000 backends x several fields x 4/s): plain keys need no split.
    if (p.indexOf('.') < 0) cur = o[p];
    else {
      cur = o;
      for (const part of splitPath(p)) cur = isObj(cur) ? cur[part] : undefined;
    }
    if (cur !== undefined && cur !== null) return cur;
  }
  return undefined;
}
const pickNum = (o: Obj, ...paths: string[]) => num(pick(o, ...paths));

/** HAProxy and friends say UP/DOWN/MAINT/DRAIN/NOLB; discovery says healthy/unhealthy/starting/none. */
export function normalizeHealth(raw: unknown): string {
  const s = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
  if (!s) return '-';
  if (s === 'healthy' || s === 'unhealthy' || s === 'starting' || s === 'none') return s;
  if (s.startsWith('up') || s === 'open' || s === 'ok' || s === 'ready' || s === 'no check') return s === 'no check' ? 'none' : 'healthy';
  if (s.startsWith('down') || s === 'failed' || s === 'error') return 'unhealthy';
  if (s.startsWith('maint') || s.startsWith('drain') || s === 'nolb') return '-';
  return printable(s, 12);
}

function normalizeState(item: Obj): string {
  const status = typeof item.status === 'string' ? item.status.toLowerCase() : '';
  if (item.disabled === true || status.startsWith('maint') || item.state === 'disabled' || item.admin === 'maint') return 'disabled';
  if (item.draining === true || status.startsWith('drain') || status === 'nolb' || item.state === 'draining' || item.admin === 'drain') return 'draining';
  return str(item.state, 12) ?? 'running';
}

/** `198.18.0.5:80` or `[::1]:80` in one field (HAProxy `addr`). */
function splitAddress(text: string): { address: string; port: number | null } {
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6) return { address: v6[1]!, port: Number(v6[2]) };
  const v4 = /^([^:]+):(\d+)$/.exec(text);
  if (v4) return { address: v4[1]!, port: Number(v4[2]) };
  return { address: text, port: null };
}

/** A backend from any kind's list item; undefined when it has neither an address nor an id. */
export function sampleBackend(item: unknown, kind: string): BackendSample | undefined {
  if (!isObj(item)) return undefined;
  const rawAddr = str(pick(item, 'address', 'addr', 'app', 'endpoint', 'host', 'ip'), 64);
  let address = rawAddr ?? '';
  let port = num(item.port) ?? null;
  if (rawAddr && port === null) ({ address, port } = splitAddress(rawAddr));
  const id = str(pick(item, 'id', 'backend', 'server', 'name'), 80) ?? '';
  if (!address && !id) return undefined;
  const counters: Counters = {};
  const packets = pickNum(item, 'packets', 'counters.packets');
  const bytes = pickNum(item, 'bytes', 'counters.bytes', 'bytesIn');
  const hits = pickNum(item, 'hits', 'stot', 'served', 'sessionsTotal', 'requests', 'total');
  if (packets !== undefined) counters.packets = packets;
  if (bytes !== undefined) counters.bytes = bytes;
  if (hits !== undefined) counters.hits = hits;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    key: keyPart(address ? (port === null ? address : `${host}:${port}`) : id),
    id,
    name: str(pick(item, 'name', 'server', 'id'), 80) ?? id,
    address,
    port,
    source: str(item.source, 12) ?? kind,
    health: normalizeHealth(pick(item, 'health', 'check', 'status')),
    state: normalizeState(item),
    counters,
    sessions: pickNum(item, 'sessions', 'scur', 'active', 'connections', 'conns'),
    queued: pickNum(item, 'queued', 'qcur', 'queue'),
  };
}

/** Where each kind keeps its list (render: `servers`, since its `backends` is a count; edge: `nodeList`). */
const LIST_KEYS = ['backends', 'servers', 'nodeList', 'nodes', 'containers', 'replicas', 'instances'];

function backendList(content: Obj, kind: string): BackendSample[] {
  const list = LIST_KEYS.map((k) => content[k]).find(Array.isArray);
  if (!list) return [];
  const out: BackendSample[] = [];
  const seen = new Set<string>();
  for (const item of list) {
    const b = sampleBackend(item, kind);
    if (b && !seen.has(b.key)) {
      seen.add(b.key);
      out.push(b);
    }
  }
  return out;
}

/** Scalars worth showing in a drill-down, from the top level of a service's content. */
function scalarDetail(content: Obj, skip: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(content)) {
    if (skip.has(k) || Object.keys(out).length >= 12) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[printable(k, 24)] = printable(String(v), 60);
  }
  return out;
}

const CONSUMED = new Set([...LIST_KEYS, 'queued', 'active', 'capacity', 'concurrency', 'requests', 'hits', 'served', 'timeouts', 'starts', 'desired', 'waitP50Ms', 'waitP99Ms']);

/** The shared reading: backends plus the service-level numbers any kind may carry. */
function genericService(service: string, content: unknown, kind: string, role: string): ServiceSample {
  const c = isObj(content) ? content : {};
  const backends = backendList(c, kind);
  const counters: ServiceSample['counters'] = {};
  const hits = pickNum(c, 'requests', 'served', 'hits', 'stot', 'counters.requests');
  const timeouts = pickNum(c, 'timeouts', 'counters.timeouts');
  const starts = pickNum(c, 'starts', 'counters.starts');
  if (hits !== undefined) counters.hits = hits;
  if (timeouts !== undefined) counters.timeouts = timeouts;
  if (starts !== undefined) counters.starts = starts;
  const nodesRaw = pick(c, 'nodes');
  return {
    service: keyPart(printable(service, 64)),
    role,
    backends,
    counters,
    queued: pickNum(c, 'queued', 'queue', 'qcur'),
    active: pickNum(c, 'active', 'scur', 'sessions', 'connections'),
    capacity: pickNum(c, 'capacity', 'concurrency', 'maxActive'),
    nodes: Array.isArray(nodesRaw) ? nodesRaw.length : num(nodesRaw),
    replicas: Array.isArray(pick(c, 'replicas')) ? (pick(c, 'replicas') as unknown[]).length : pickNum(c, 'replicas', 'running', 'current'),
    desired: pickNum(c, 'desired', 'target', 'wanted'),
    waitP50Ms: pickNum(c, 'waitP50Ms', 'waitP50', 'wait.p50', 'waitMs.p50', 'p50'),
    waitP99Ms: pickNum(c, 'waitP99Ms', 'waitP99', 'wait.p99', 'waitMs.p99', 'p99'),
    detail: scalarDetail(c, CONSUMED),
  };
}

type ServiceAdapter = (service: string, content: unknown) => ServiceSample;

/** map-image: `{ [mappingId]: MappingView & { syncs, lastSyncMs, lastError } }` (docs/map-image.md). */
const mapImage: ServiceAdapter = (service, content) => {
  const s = genericService(service, content, 'kernel', 'mapping');
  const c = isObj(content) ? content : {};
  const detail: Record<string, string> = {};
  const put = (k: string, v: unknown) => {
    const t = str(v, 80);
    if (t !== undefined) detail[k] = t;
  };
  put('image', c.image);
  put('port', c.port !== undefined ? `${String(c.port)}/${String(c.protocol ?? 'tcp')}` : undefined);
  put('to port', c.containerPort);
  put('dataplane', c.dataplane);
  put('address', c.address);
  put('syncs', c.syncs);
  put('last sync ms', typeof c.lastSyncMs === 'number' ? c.lastSyncMs.toFixed(1) : undefined);
  put('last error', c.lastError);
  return { ...s, detail };
};

/** Facts for the drill-down, from dotted paths; absent ones are left out. */
function facts(c: Obj, entries: ReadonlyArray<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [label, path] of entries) {
    const t = str(pick(c, path), 80);
    if (t !== undefined) out[label] = t;
  }
  return out;
}

/**
 * render (src/engine/frontends/status.ts): per service `{ proxy, bind, backends: <count>, slots,
 * drained, draining: [backend ids] (both shown as draining), counters: {reloads, refusals...}, lastError, servers: [{ server,
 * backend, address: "ip:port", status, sessions, queue, hits, rate, errors5xx }], statsError }`.
 */
const render: ServiceAdapter = (service, content) => {
  const s = genericService(service, content, 'proxy', 'frontend');
  const c = isObj(content) ? content : {};
  const drained = new Set([c.drained, c.draining].flatMap((list) => (Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : [])));
  const backends = s.backends.map((b) => (drained.has(b.id) && b.state === 'running' ? { ...b, state: 'draining' } : b));
  const detail = facts(c, [
    ['proxy', 'proxy'],
    ['bind', 'bind'],
    ['slots', 'slots'],
    ['reloads', 'counters.reloads'],
    ['runtime ops', 'counters.runtimeOps'],
    ['refusals', 'counters.refusals'],
    ['last error', 'lastError.message'],
    ['last refusal', 'lastRefusal.message'],
    ['stats', 'statsError'],
  ]);
  return { ...s, backends, detail };
};

/** edge (src/engine/edge/route.ts RouteView): queued/active/capacity/nodes/starts/timeouts/served/wait p50 p99, nodeList. */
const edge: ServiceAdapter = (service, content) => {
  const s = genericService(service, content, 'edge', 'route');
  const c = isObj(content) ? content : {};
  return { ...s, detail: facts(c, [['path', 'path'], ['haproxy queued', 'warmQueued'], ['idle', 'idle'], ['instances', 'instances'], ['pending', 'pending'], ['rejected', 'rejected'], ['requeued', 'requeued'], ['start failures', 'startFailures']]) };
};

/** node (src/engine/edge/node.ts NodeView): one process serving a route; shown as one backend, its app. */
const node: ServiceAdapter = (service, content) => {
  const s = genericService(service, content, 'node', 'route');
  const c = isObj(content) ? content : {};
  const appPort = num(c.appPort);
  const self = appPort
    ? sampleBackend({ id: `node:${service}`, name: `app pid ${String(c.appPid ?? '-')}`, address: '127.0.0.1', port: appPort, active: c.active, served: c.served, state: c.state === 'serving' ? 'running' : c.state, health: c.state === 'serving' ? 'healthy' : c.state === 'starting' ? 'starting' : undefined }, 'node')
    : undefined;
  return { ...s, backends: self ? [self] : s.backends, detail: facts(c, [['state', 'state'], ['edge', 'edge'], ['idle', 'idle'], ['app failures', 'appFailures'], ['edge failures', 'edgeFailures']]) };
};

/**
 * deploy (src/engine/deploy/view.ts ServiceView): `{ image, revision, phase, message, desired,
 * ready, replicas: [{id, name, phase, state, health, address, port}], autoscale: {min, max,
 * metric, target, last: Decision} }`.
 */
const deploy: ServiceAdapter = (service, content) => {
  const s = genericService(service, content, 'docker', 'deploy');
  const c = isObj(content) ? content : {};
  const d = pick(c, 'autoscale.last', 'autoscaler.last', 'decision');
  const detail = facts(c, [['image', 'image'], ['revision', 'revision'], ['phase', 'phase'], ['ready', 'ready'], ['message', 'message'], ['failed revision', 'failedRevision']]);
  const a = pick(c, 'autoscale');
  if (isObj(a) && a.min !== undefined) detail.autoscale = printable(`${String(a.min)}..${String(a.max)} on ${String(a.metric ?? '?')} target ${String(a.target ?? '?')}`, 80);
  if (isObj(d)) detail['last decision'] = printable(`${String(d.from ?? '?')}->${String(d.to ?? '?')} ${String(d.mode ?? '')}: ${String(d.reason ?? '')}`, 100);
  else if (typeof d === 'string') detail['last decision'] = printable(d, 100);
  return { ...s, detail };
};
/** discover --watch: `{ [service]: { backends: Backend[] } }`. */
const discover: ServiceAdapter = (service, content) => genericService(service, content, 'discover', 'service');

export const ADAPTERS: Readonly<Record<string, ServiceAdapter>> = { 'map-image': mapImage, render, edge, node, deploy, discover, run: deploy };

function adaptEvents(events: unknown): SourceEvent[] {
  if (!Array.isArray(events)) return [];
  const out: SourceEvent[] = [];
  for (const e of events) {
    if (!isObj(e) || typeof e.time !== 'string') continue;
    out.push({ time: e.time, type: str(e.type, 16) ?? 'event', message: str(e.message, 200) ?? '', ...(typeof e.service === 'string' ? { service: printable(e.service, 64) } : {}) });
  }
  return out;
}

/** Snapshot (any kind, any version 1 content) -> SourceSample. */
export function adaptSnapshot(snap: Snapshot, receivedAt = Date.now()): SourceSample {
  const kind = printable(String(snap.kind ?? 'unknown'), 24);
  const adapter = ADAPTERS[kind] ?? ((service: string, content: unknown) => genericService(service, content, kind, 'service'));
  const services: ServiceSample[] = [];
  if (isObj(snap.services)) for (const [name, content] of Object.entries(snap.services)) services.push(adapter(name, content));
  services.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  const t = Date.parse(String(snap.time));
  return {
    kind,
    name: printable(String(snap.name ?? ''), 64),
    pid: num(snap.pid) ?? null,
    time: Number.isFinite(t) ? t : receivedAt,
    services,
    events: adaptEvents(snap.events),
    fleet: adaptFleet(snap.fleet, `${kind}.${printable(String(snap.name ?? ''), 64)}`),
  };
}
