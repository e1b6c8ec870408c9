import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { DiscoverOptions } from '../discover.js';
import { ExitCode, UserError } from '../errors.js';
import type { CheckSpec } from '../health/checker.js';
import { parseCheck } from '../health/checker.js';
import { printable } from '../model/validate.js';
import type { Logger } from '../runtime/logger.js';
import { toDiscoverOptions, type SelectorFlagValues } from '../discover-options.js';
import { parseServiceRoutes, routingProblem, type ServiceRoutes } from '../frontends/routing.js';
import { CONFIG_SCHEMA } from './schema.js';
import { tlsProblem, type ServiceTls, type TlsOptions } from '../frontends/tls/tls-data.js';
import { labelRoutesServe, pageOf } from './config-labels.js';
import { resolveSecret } from './config-secrets.js';
import { formatPath, validate, type Path, type SchemaError } from './schema-dsl.js';

/**
 * `elastic.yaml`: read, validate against the schema (schema.ts), cross-check (references, unique
 * names and ports), and turn into a typed `RunConfig` with every default filled in. Every error
 * names the file, the line and the path: `elastic.yaml:12: services[0].haproxy.port: must be 1-65535`.
 */
export type ProxyName = 'haproxy' | 'nginx' | 'varnish';

export interface Bind {
  readonly address: string;
  readonly port: number;
}
export interface ProxyServe extends Bind {
  readonly mode: 'http' | 'tcp';
  readonly balance: 'roundrobin' | 'leastconn' | 'source';
  readonly lbCheck: string;
  readonly slots: number;
  /** Hosts/paths on a shared bind (render's routing). */
  readonly routes?: ServiceRoutes;
  readonly isDefaultService?: boolean;
  readonly tls?: ServiceTls;
  /** A custom 503 page's body (error_page_503, read and validated when the config is loaded). */
  readonly page503?: string;
}
/** `routes_from_labels:`: containers labelled elastic.http.host, routed on one front-door bind. */
export interface LabelRoutesServe {
  readonly proxy: 'haproxy' | 'nginx';
  readonly serve: ProxyServe;
  /** Docker discovery narrowed by label/network (render-labels.ts adds the host label). */
  readonly discover: DiscoverOptions;
}
export interface MapImageServe {
  readonly port: number;
  readonly protocol: 'tcp' | 'udp';
  readonly address?: string;
  readonly dataplane: 'auto' | 'nft' | 'iptables';
  readonly spread?: 'random' | 'hash';
  readonly seed?: number;
  readonly affinity?: 'none' | 'client-ip';
  readonly affinityTimeoutS?: number;
}
export interface EdgeServe extends Bind {
  readonly nodeAddress: string;
  readonly nodePort: number;
  readonly tokenFile?: string;
  readonly maxQueue: number;
  readonly queueTimeoutMs: number;
  readonly minInstances: number;
  readonly maxInstances: number;
  readonly idleTimeoutMs: number;
  readonly command?: readonly string[];
  /** The warm path (docs/proxy.md), as `proxy edge --warm`. */
  readonly warm: 'haproxy' | 'off';
}

export interface SourceConfig {
  readonly name: string;
  readonly kind: 'docker' | 'ec2' | 'static';
  /** What `discover` would be given for the same selectors (service = the source name). */
  readonly discover: DiscoverOptions;
}

export interface ServiceConfig {
  readonly name: string;
  readonly sources: readonly string[];
  readonly health?: CheckSpec;
  readonly guard: { readonly minBackends: number; readonly maxChangePct: number };
  readonly haproxy?: ProxyServe;
  readonly nginx?: ProxyServe;
  readonly varnish?: ProxyServe;
  readonly mapImage?: MapImageServe;
  readonly edge?: EdgeServe;
}

export interface DeployConfig {
  readonly service: string;
  readonly image: string;
  readonly replicas: number;
  readonly port?: number;
  readonly network?: string;
  readonly env: readonly string[];
  readonly health: string;
  readonly maxSurge: string;
  readonly maxUnavailable: string;
}

export interface ApiKey {
  readonly accessKeyId: string;
  readonly secret: string;
}

export interface RunConfig {
  readonly version: 1;
  readonly name: string;
  readonly file: string;
  /** sha256 of the file text (12 hex): logs and status say which config is in force. */
  readonly hash: string;
  readonly sources: Readonly<Record<string, SourceConfig>>;
  readonly services: readonly ServiceConfig[];
  readonly deploys: readonly DeployConfig[];
  readonly proxies: {
    readonly haproxy: { readonly instance: string; readonly bin?: string; readonly tls?: TlsOptions };
    readonly nginx: { readonly instance: string; readonly bin?: string; readonly tls?: TlsOptions };
    readonly varnish: { readonly instance: string; readonly varnishInstance?: string };
  };
  readonly sync: { readonly minIntervalMs: number; readonly resyncMs: number };
  readonly metrics: {
    readonly prometheus?: Bind & { readonly path: string };
    readonly statsd?: { readonly host: string; readonly port: number; readonly prefix: string; readonly intervalMs: number };
  };
  readonly routesFromLabels?: LabelRoutesServe;
  readonly api?: Bind & { readonly region: string; readonly keys: readonly ApiKey[]; readonly allowTargets: readonly string[]; readonly haproxy: { readonly address: string; readonly slots: number } };
}

const lineNo = (problem: string) => Number(/:(\d+): /.exec(problem)?.[1] ?? 0);

/** A config that does not validate: every problem, each as `file:line: path: message`. */
export class ConfigError extends UserError {
  constructor(readonly problems: readonly string[]) {
    super(`${problems[0] ?? 'invalid config'}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`, 'fix the config; elastic run --check -c FILE lists every problem; see docs/run.md', ExitCode.config);
  }
}

export async function loadConfig(file: string, opts: { env?: NodeJS.ProcessEnv; logger?: Logger } = {}): Promise<RunConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check the -c/--config path', ExitCode.config);
  }
  return parseConfig(text, file, opts);
}

export function parseConfig(text: string, file: string, opts: { env?: NodeJS.ProcessEnv; logger?: Logger } = {}): RunConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // The line of each error's own position (linePos is only filled with prettyErrors).
    throw new ConfigError(doc.errors.map((e) => `${file}:${e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line}: not valid YAML: ${printable(e.message.split('\n')[0] ?? '', 160)}`));
  }
  const root: unknown = doc.toJS({ maxAliasCount: 100 });
  const at = (e: SchemaError) => `${file}:${lineOf(doc, lines, e.path, e.atKey)}: ${formatPath(e.path)}: ${e.message}`;
  const schemaErrors = validate(CONFIG_SCHEMA, root ?? {});
  const errors: SchemaError[] = [];
  let config: RunConfig | undefined;
  try {
    config = build(root as Raw, file, text, errors, opts);
  } catch (err) {
    // Building a config that failed the schema may trip on a wrong type: its schema errors say why.
    if (schemaErrors.length === 0) throw err;
  }
  // Schema and reference errors together, in line order, each once: one --check lists them all.
  // (A value the schema refused is not reported twice: build errors at or around its path are dropped.)
  const refusedPaths = schemaErrors.map((e) => formatPath(e.path));
  const related = (p: string) => refusedPaths.some((r) => r.startsWith(p) || p.startsWith(r));
  const crossChecks = errors.filter((e) => !related(formatPath(e.path)));
  const all = [...new Set([...schemaErrors, ...crossChecks].map(at))].sort((a, b) => lineNo(a) - lineNo(b));
  if (all.length > 0 || !config) throw new ConfigError(all);
  return config;
}

/** The line of the node at `path` (or of its nearest ancestor that exists). */
export function lineOf(doc: Document, lines: LineCounter, path: Path, atKey = false): number {
  let node: Node | null = doc.contents as Node | null;
  let offset = node?.range?.[0] ?? 0;
  for (let i = 0; i < path.length && node; i++) {
    const p = path[i]!;
    let next: Node | null = null;
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(p));
      if (pair && isScalar(pair.key)) {
        if (atKey && i === path.length - 1) return lines.linePos(pair.key.range?.[0] ?? offset).line;
        next = (pair.value as Node | null) ?? null;
        if (!next) return lines.linePos(pair.key.range?.[0] ?? offset).line;
      }
    } else if (isSeq(node) && typeof p === 'number') next = (node.items[p] as Node | undefined) ?? null;
    if (!next) break;
    node = next;
    offset = node.range?.[0] ?? offset;
  }
  return lines.linePos(offset).line;
}

// The validated raw shape (schema.ts guarantees the types).
type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function build(raw: Raw, file: string, text: string, errors: SchemaError[], opts: { env?: NodeJS.ProcessEnv; logger?: Logger }): RunConfig {
  const env = opts.env ?? process.env;
  const fail = (path: Path, message: string) => errors.push({ path, message });
  const wrap = <T>(path: Path, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof UserError) fail(path, err.message);
      else throw err;
      return undefined;
    }
  };

  const sources: Record<string, SourceConfig> = {};
  for (const [name, s] of Object.entries((raw.sources ?? {}) as Record<string, Raw>)) {
    const kind = s.docker ? 'docker' : s.ec2 ? 'ec2' : 'static';
    const sel = s[kind] as Raw;
    const flags: SelectorFlagValues =
      kind === 'docker'
        ? { image: sel.image, label: sel.label, name: sel.name, network: sel.network, port: sel.port?.toString(), 'docker-host': sel.host, 'include-unhealthy': sel.include_unhealthy, service: name }
        : kind === 'ec2'
          ? { tag: sel.tags, port: String(sel.port), region: sel.region, profile: sel.profile, endpoint: sel.endpoint, public: sel.public, 'poll-interval': sel.poll_interval, service: name }
          : { backend: sel.backends, file: sel.file, service: name };
    const discover = wrap(['sources', name, kind], () => toDiscoverOptions(flags, opts.logger));
    if (discover) sources[name] = { name, kind, discover };
  }

  // Everything that listens or maps a port: two users of one port is a config error.
  const ports = new Map<string, string>();
  const claim = (key: string, path: Path, what: string) => {
    const prev = ports.get(key);
    if (prev) fail(path, `${what} is already used by ${prev}`);
    else ports.set(key, formatPath(path));
  };
  const bindKey = (b: { address?: string; port: number }, proto = 'tcp') => `${proto}/${b.address ?? '*'}:${b.port}`;

  const names = new Set<string>();
  const services: ServiceConfig[] = ((raw.services ?? []) as Raw[]).map((s, i) => {
    const p: Path = ['services', i];
    if (names.has(s.name)) fail([...p, 'name'], `service "${s.name}" is defined twice`);
    names.add(s.name);
    (s.sources as string[]).forEach((src, j) => {
      if (!(raw.sources ?? {})[src]) fail([...p, 'sources', j], `no source named "${src}" (define it under sources:)`);
    });
    const health = s.health ? wrap([...p, 'health', 'check'], () => parseCheck(s.health.check, { intervalMs: s.health.interval_ms, timeoutMs: s.health.timeout_ms, rise: s.health.rise, fall: s.health.fall })) : undefined;
    const proxy = (kind: ProxyName): ProxyServe | undefined => {
      const x = s[kind] as Raw | undefined;
      if (!x) return undefined;
      const routed = x.hosts || x.paths ? wrap([...p, kind], () => parseServiceRoutes(x.hosts, x.paths, x.strip_prefix === true)) : undefined;
      const isDefault = raw.default_service === s.name && kind !== 'varnish';
      const http = kind !== 'varnish' && x.mode !== 'tcp';
      if (!http && x.error_page_503) fail([...p, kind, 'error_page_503'], 'a 503 page is for HAProxy and nginx http services');
      const serve = { address: x.address ?? '127.0.0.1', port: x.port, mode: kind === 'varnish' ? 'http' : (x.mode ?? 'http'), balance: x.balance ?? 'roundrobin', lbCheck: x.lb_check ?? 'tcp', slots: x.slots ?? 8, ...(routed ? { routes: routed } : {}), ...(isDefault ? { isDefaultService: true } : {}), ...(x.tls ? { tls: { redirect: x.tls.redirect === true, hstsMaxAge: x.tls.hsts ?? 0, ...(x.tls.cert ? { cert: x.tls.cert } : {}) } } : {}), ...(http ? pageOf(x, raw, [...p, kind], wrap) : {}) } as const;
      // Services of one proxy may share a routed bind; routingProblem (below) checks the routes.
      if (routed || isDefault) {
        if (ports.get(bindKey(serve)) !== `${kind} routes`) claim(bindKey(serve), [...p, kind, 'port'], `${serve.address}:${serve.port}`);
        ports.set(bindKey(serve), `${kind} routes`);
      } else claim(bindKey(serve), [...p, kind, 'port'], `${serve.address}:${serve.port}`);
      return serve;
    };
    let mapImage: MapImageServe | undefined;
    if (s.map_image) {
      const m = s.map_image as Raw;
      mapImage = { port: m.port, protocol: m.protocol ?? 'tcp', address: m.address, dataplane: m.dataplane ?? 'auto', spread: m.spread, seed: m.seed, affinity: m.affinity, affinityTimeoutS: m.affinity_timeout_s };
      if (m.address?.startsWith('127.') || m.address === '::1') fail([...p, 'map_image', 'address'], 'loopback addresses cannot be mapped (see docs/map-image.md)');
      claim(`map/${mapImage.protocol}/${mapImage.port}`, [...p, 'map_image', 'port'], `${mapImage.port}/${mapImage.protocol} mapping`);
    }
    let edge: EdgeServe | undefined;
    if (s.edge) {
      const e = s.edge as Raw;
      edge = {
        address: e.address ?? '127.0.0.1',
        port: e.port,
        nodeAddress: e.node_address ?? '127.0.0.1',
        nodePort: e.node_port ?? 0,
        tokenFile: e.token_file,
        maxQueue: e.max_queue ?? 1000,
        queueTimeoutMs: e.queue_timeout_ms ?? 30_000,
        minInstances: e.min_instances ?? 0,
        maxInstances: e.max_instances ?? 8,
        idleTimeoutMs: e.idle_timeout_ms ?? 60_000,
        command: e.command,
        warm: e.warm ?? 'haproxy',
      };
      claim(bindKey(edge), [...p, 'edge', 'port'], `${edge.address}:${edge.port}`);
      if (edge.nodePort) claim(bindKey({ address: edge.nodeAddress, port: edge.nodePort }), [...p, 'edge', 'node_port'], `${edge.nodeAddress}:${edge.nodePort}`);
      if (edge.minInstances > edge.maxInstances) fail([...p, 'edge', 'min_instances'], 'is above max_instances');
      if (edge.minInstances > 0 && !edge.command) fail([...p, 'edge', 'min_instances'], 'needs edge.command to start instances');
      if (!edge.tokenFile && !edge.command && !env.ELASTIC_EDGE_TOKEN) fail([...p, 'edge'], 'needs token_file (or $ELASTIC_EDGE_TOKEN, or a command it starts itself)');
    }
    const g = (s.guardrails ?? {}) as Raw;
    return {
      name: s.name,
      sources: s.sources,
      health,
      guard: { minBackends: g.min_backends ?? 1, maxChangePct: g.max_change ?? 50 },
      haproxy: proxy('haproxy'),
      nginx: proxy('nginx'),
      varnish: proxy('varnish'),
      mapImage,
      edge,
    };
  });

  const routesFromLabels = raw.routes_from_labels ? labelRoutesServe(raw, claim, wrap, opts.logger) : undefined;
  if (raw.default_service !== undefined && !names.has(raw.default_service)) fail(['default_service'], `no service named "${raw.default_service}"`);
  for (const kind of ['haproxy', 'nginx'] as const) {
    const specs = services.flatMap((s) => (s[kind] ? [{ name: s.name, bind: s[kind]!, mode: s[kind]!.mode, routes: s[kind]!.routes, isDefaultService: s[kind]!.isDefaultService }] : []));
    const problem = routingProblem(specs);
    if (problem) fail(['services'], `${kind}: ${problem}`);
  }

  const deployNames = new Set<string>();
  const deploys: DeployConfig[] = ((raw.deploys ?? []) as Raw[]).map((d, i) => {
    if (deployNames.has(d.service)) fail(['deploys', i, 'service'], `deploy "${d.service}" is defined twice`);
    deployNames.add(d.service);
    return { service: d.service, image: d.image, replicas: d.replicas, port: d.port, network: d.network, env: d.env ?? [], health: d.health ?? 'auto', maxSurge: d.max_surge ?? '1', maxUnavailable: d.max_unavailable ?? '0' };
  });

  const m = (raw.metrics ?? {}) as Raw;
  const prometheus = m.prometheus ? { address: m.prometheus.address ?? '127.0.0.1', port: m.prometheus.port, path: m.prometheus.path ?? '/metrics' } : undefined;
  if (prometheus) claim(bindKey(prometheus), ['metrics', 'prometheus', 'port'], `${prometheus.address}:${prometheus.port}`);
  const statsd = m.statsd ? { host: m.statsd.host ?? '127.0.0.1', port: m.statsd.port, prefix: m.statsd.prefix ?? 'elastic', intervalMs: m.statsd.interval_ms ?? 10_000 } : undefined;

  let api: RunConfig['api'];
  if (raw.api) {
    const a = raw.api as Raw;
    const keyIds = new Set<string>();
    const keys: ApiKey[] = [];
    (a.keys as Raw[]).forEach((k, i) => {
      const p: Path = ['api', 'keys', i];
      if (keyIds.has(k.access_key_id)) fail([...p, 'access_key_id'], 'is listed twice');
      keyIds.add(k.access_key_id);
      const secret = wrap(p, () => resolveSecret(k, env));
      if (secret !== undefined) keys.push({ accessKeyId: k.access_key_id, secret });
    });
    api = { address: a.address ?? '127.0.0.1', port: a.port, region: a.region ?? 'us-east-1', keys, allowTargets: a.allow_targets ?? [], haproxy: { address: a.haproxy?.address ?? '127.0.0.1', slots: a.haproxy?.slots ?? 8 } };
    claim(bindKey(api), ['api', 'port'], `${api.address}:${api.port}`);
  }

  const px = (raw.proxies ?? {}) as Raw;
  const proxyTls = (kind: 'haproxy' | 'nginx'): TlsOptions | undefined => {
    const t = px[kind]?.tls as Raw | undefined;
    if (!t) return undefined;
    if (!t.cert_dir && !t.default_cert) fail(['proxies', kind, 'tls'], 'needs cert_dir or default_cert');
    const bind = { address: t.address ?? '127.0.0.1', port: t.port };
    claim(bindKey(bind), ['proxies', kind, 'tls', 'port'], `${bind.address}:${bind.port}`);
    return { bind, ...(t.cert_dir ? { certDir: t.cert_dir } : {}), ...(t.default_cert ? { defaultCert: t.default_cert } : {}) };
  };
  const tlsOf = { haproxy: proxyTls('haproxy'), nginx: proxyTls('nginx') };
  for (const kind of ['haproxy', 'nginx'] as const) {
    const specs = services.flatMap((s) => (s[kind] ? [{ name: s.name, bind: s[kind]!, mode: s[kind]!.mode, tls: s[kind]!.tls }] : []));
    const problem = tlsProblem(specs, tlsOf[kind]);
    if (problem) fail(['proxies', kind, 'tls'], problem);
  }
  return {
    version: 1,
    name: raw.name ?? 'main',
    file,
    hash: createHash('sha256').update(text).digest('hex').slice(0, 12),
    sources,
    services,
    deploys,
    proxies: {
      haproxy: { instance: px.haproxy?.instance ?? `run-${raw.name ?? 'main'}`, bin: px.haproxy?.bin, ...(tlsOf.haproxy ? { tls: tlsOf.haproxy } : {}) },
      nginx: { instance: px.nginx?.instance ?? `run-${raw.name ?? 'main'}-nginx`, bin: px.nginx?.bin, ...(tlsOf.nginx ? { tls: tlsOf.nginx } : {}) },
      varnish: { instance: px.varnish?.instance ?? `run-${raw.name ?? 'main'}-varnish`, varnishInstance: px.varnish?.varnish_instance },
    },
    sync: { minIntervalMs: raw.sync?.min_interval_ms ?? 200, resyncMs: raw.sync?.resync_ms ?? 60_000 },
    metrics: { prometheus, statsd },
    api,
    ...(routesFromLabels ? { routesFromLabels } : {}),
  };
}

/** Which appliers a config needs (for logs and status). */
export function servedBy(s: ServiceConfig): string[] {
  return (['haproxy', 'nginx', 'varnish', 'mapImage', 'edge'] as const).filter((k) => s[k] !== undefined).map((k) => (k === 'mapImage' ? 'map-image' : k));
}

export function configSummary(c: RunConfig): Record<string, unknown> {
  return {
    file: c.file,
    hash: c.hash,
    sources: Object.fromEntries(Object.values(c.sources).map((s) => [s.name, s.kind])),
    services: Object.fromEntries(c.services.map((s) => [s.name, servedBy(s)])),
    deploys: c.deploys.map((d) => d.service),
    metrics: { prometheus: c.metrics.prometheus ? `${c.metrics.prometheus.address}:${c.metrics.prometheus.port}${c.metrics.prometheus.path}` : null, statsd: c.metrics.statsd ? `${c.metrics.statsd.host}:${c.metrics.statsd.port}` : null },
    api: c.api ? `${c.api.address}:${c.api.port}` : null,
    routesFromLabels: c.routesFromLabels ? `${c.routesFromLabels.proxy} ${c.routesFromLabels.serve.address}:${c.routesFromLabels.serve.port}` : null,
  };
}
