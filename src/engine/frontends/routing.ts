import { ANY_HOST, parseHostPattern, parsePathPrefix, routeTable, type Route } from './routes.js';

/**
 * Shared binds (issue 16): several http services on one address:port, routed by Host and path.
 * This module turns the services' declared routes into the data the templates print (pure); the
 * precedence itself is routes.ts's (`routeTable`), so HAProxy's rule order and nginx's
 * `server`/`location` choice implement one definition (docs/render.md "Routing").
 */
export interface ServiceRoutes {
  /** Normalized host patterns (routes.ts); empty: any host. */
  readonly hosts: readonly string[];
  /** Normalized path prefixes; empty: `/`. */
  readonly paths: readonly string[];
  /** Remove the matched prefix before the request goes to the backend (`/api/x` -> `/x`). */
  readonly stripPrefix: boolean;
}

export interface RoutedSpec {
  readonly name: string;
  readonly bind: { readonly address: string; readonly port: number };
  readonly mode: string;
  readonly routes?: ServiceRoutes;
  /** Requests on its bind that no route matches go here (else: a 404 page). */
  readonly isDefaultService?: boolean;
}

export interface TemplateRoute {
  readonly id: string; // r1, r2, ... unique in the config
  /** The id's number (r7: 7): the route HAProxy records on a bind with strip_prefix (0: none). */
  readonly num: number;
  readonly service: string;
  readonly path: string;
  readonly root: boolean;
  readonly stripPrefix: boolean;
  /** The service has no backends now (nginx renders the 503 page; HAProxy decides at run time). */
  readonly empty: boolean;
}

export interface TemplateHost {
  readonly id: string; // h1, h2, ... unique in its bind
  readonly host: string;
  readonly kind: 'exact' | 'wildcard' | 'any';
  /** exact: the name; wildcard: `.example.com`. */
  readonly match: string;
  readonly routes: readonly TemplateRoute[];
  /** Whether a `/` route catches every path of this host (else: the default service or 404). */
  readonly hasRoot: boolean;
}

export interface RoutedBind {
  readonly name: string; // identifier
  readonly bind: { readonly address: string; readonly port: number };
  readonly defaultService: string | null;
  /** The default service as a `/` route (nginx renders it in every server without its own `/`). */
  readonly defaultRoute: TemplateRoute | null;
  /** Exact and wildcard hosts, most specific first. */
  readonly hosts: readonly TemplateHost[];
  /** Routes of services that declare paths but no hosts (nginx: the default server). */
  readonly anyHost: TemplateHost | null;
  /** Every host, most specific first, the any-host group last (HAProxy's rule order). */
  readonly allHosts: readonly TemplateHost[];
  /** Whether a route strips its prefix (HAProxy then records the route taken in a variable). */
  readonly hasStrip: boolean;
}

const bindKey = (b: { address: string; port: number }) => `${b.address}:${b.port}`;

/** Parse declared hosts and paths; the first invalid one is thrown as an Error naming it. */
export function parseServiceRoutes(hosts: readonly string[] = [], paths: readonly string[] = [], stripPrefix = false): ServiceRoutes {
  const h = hosts.map((text) => {
    const r = parseHostPattern(text);
    if ('error' in r) throw new Error(`host "${text.slice(0, 60).replace(/[^\x20-\x7e]/g, '?')}": ${r.error}`);
    return r.host;
  });
  const p = paths.map((text) => {
    const r = parsePathPrefix(text);
    if ('error' in r) throw new Error(`path "${text.slice(0, 60).replace(/[^\x20-\x7e]/g, '?')}": ${r.error}`);
    return r.path;
  });
  return { hosts: [...new Set(h)], paths: [...new Set(p)], stripPrefix };
}

/** The routes a spec declares (hosts x paths). */
function routesOf(spec: RoutedSpec): Route[] {
  const r = spec.routes;
  if (!r) return [];
  const hosts = r.hosts.length > 0 ? r.hosts : [ANY_HOST];
  const paths = r.paths.length > 0 ? r.paths : ['/'];
  return hosts.flatMap((host) => paths.map((path) => ({ service: spec.name, host, path, stripPrefix: r.stripPrefix && path !== '/' })));
}

type Bind = { readonly address: string; readonly port: number };

/**
 * Whether a bind is routed: a service on it declares routes or is the default, or several share
 * it, or it is a front door (`frontDoor`: routed even with no service yet, then every request
 * gets the 404 page; render --routes-from-labels before any container is labelled).
 */
function routedKeys(specs: readonly RoutedSpec[], frontDoor?: Bind): Set<string> {
  const count = new Map<string, number>();
  for (const s of specs) count.set(bindKey(s.bind), (count.get(bindKey(s.bind)) ?? 0) + 1);
  const keys = specs.filter((s) => s.routes || s.isDefaultService || count.get(bindKey(s.bind))! > 1).map((s) => bindKey(s.bind));
  return new Set(frontDoor ? [bindKey(frontDoor), ...keys] : keys);
}

export function isRouted(spec: RoutedSpec, specs: readonly RoutedSpec[], frontDoor?: Bind): boolean {
  return routedKeys(specs, frontDoor).has(bindKey(spec.bind));
}

/**
 * What makes a set of services unroutable, as one message, or null: a tcp service on a shared
 * bind or with routes, a service on a shared bind with no route that is not the default, two
 * defaults on one bind, two services claiming one host and path.
 */
export function routingProblem(specs: readonly RoutedSpec[]): string | null {
  const keys = routedKeys(specs);
  for (const key of keys) {
    const on = specs.filter((s) => bindKey(s.bind) === key);
    const tcp = on.find((s) => s.mode !== 'http');
    if (tcp) return `service ${tcp.name}: a tcp service cannot share bind ${key} or route by host and path (use mode: http, or its own bind)`;
    const lost = on.find((s) => !s.routes && !s.isDefaultService);
    if (lost) return `service ${lost.name} shares bind ${key} but declares no hosts or paths (give it hosts:/paths:, or make it the default_service)`;
    const defaults = on.filter((s) => s.isDefaultService);
    if (defaults.length > 1) return `bind ${key} has two default services: ${defaults.map((s) => s.name).join(' and ')}`;
    try {
      routeTable(on.flatMap(routesOf));
    } catch (err) {
      return (err as Error).message;
    }
  }
  return null;
}

function hostKind(host: string): TemplateHost['kind'] {
  return host === ANY_HOST ? 'any' : host.startsWith('*.') ? 'wildcard' : 'exact';
}

/** The template data of every routed bind (pure; assumes routingProblem(specs) is null). */
export function routedBinds(specs: readonly RoutedSpec[], empty: ReadonlySet<string>, frontDoor?: Bind): RoutedBind[] {
  const keys = [...routedKeys(specs, frontDoor)];
  let n = 0;
  return keys.map((key, bi) => {
    const on = specs.filter((s) => bindKey(s.bind) === key);
    const bind = on[0]?.bind ?? frontDoor!;
    const allHosts = routeTable(on.flatMap(routesOf)).map((g, hi): TemplateHost => {
      const kind = hostKind(g.host);
      const routes = g.routes.map((r): TemplateRoute => ({ id: `r${++n}`, num: n, service: r.service, path: r.path, root: r.path === '/', stripPrefix: r.stripPrefix, empty: empty.has(r.service) }));
      return { id: `h${hi + 1}`, host: g.host, kind, match: kind === 'wildcard' ? g.host.slice(1) : g.host, routes, hasRoot: routes.some((r) => r.root) };
    });
    const def = on.find((s) => s.isDefaultService)?.name ?? null;
    const samePort = keys.slice(0, bi).filter((k) => k.endsWith(`:${bind.port}`)).length;
    return {
      name: `bind_${bind.port}${samePort > 0 ? `_${samePort + 1}` : ''}`,
      bind,
      defaultService: def,
      defaultRoute: def === null ? null : { id: `d${bi + 1}`, num: 0, service: def, path: '/', root: true, stripPrefix: false, empty: empty.has(def) },
      hosts: allHosts.filter((h) => h.kind !== 'any'),
      anyHost: allHosts.find((h) => h.kind === 'any') ?? null,
      allHosts,
      hasStrip: allHosts.some((h) => h.routes.some((r) => r.stripPrefix)),
    };
  });
}
