import type { RoutedBind, TemplateHost, TemplateRoute } from '../routing.js';
import { hostMatches } from '../routes.js';
import { certForHost, certsHash, type CertSet } from './certs.js';

/**
 * TLS in the template data (pure): a routed bind also listens on the TLS bind, with the
 * certificates of the cert store, HTTP -> HTTPS redirects and HSTS per service. Both proxies
 * use the same routes on both binds, so a request routes the same over http and https.
 */
export interface ServiceTls {
  /** A certificate file (PEM chain + key) for this service's hosts; else the cert dir / default. */
  readonly cert?: string;
  /** Plain-http requests for this service are redirected to https (301). */
  readonly redirect: boolean;
  /** Strict-Transport-Security max-age in seconds on https responses; 0: no header. */
  readonly hstsMaxAge: number;
}

export interface TlsOptions {
  readonly bind: { readonly address: string; readonly port: number };
  readonly certDir?: string;
  readonly defaultCert?: string;
}

export interface BindTls {
  readonly bind: { readonly address: string; readonly port: number };
  readonly crtList: string;
  readonly defaultCert: string;
  /** Changes when the config must change (a reload): HAProxy the crt-list, nginx also every file. */
  readonly hash: string;
  /** nginx: per service, and the certificate file of each host pattern. */
  readonly services: Readonly<Record<string, { readonly redirect: boolean; readonly hsts: string | null }>>;
  readonly certs: Readonly<Record<string, string>>;
  /**
   * nginx: a TLS-only `server` per certificate name no route declares (nginx picks a certificate
   * by server_name), serving the routes that name gets by the routing precedence.
   */
  readonly sniServers: ReadonlyArray<{ readonly host: string; readonly cert: string; readonly routes: readonly TemplateRoute[]; readonly hasRoot: boolean; readonly defaultRoute: TemplateRoute | null }>;
}

export type TlsBindData = RoutedBind & { readonly tls: BindTls | null };

interface TlsSpec {
  readonly name: string;
  readonly bind: { readonly address: string; readonly port: number };
  readonly tls?: ServiceTls;
}

export const HSTS_MAX = 63_072_000; // two years, the preload list's own ceiling
const hstsValue = (t: ServiceTls | undefined) => (t && t.hstsMaxAge > 0 ? `max-age=${t.hstsMaxAge}` : null);
const sameBind = (a: TlsSpec['bind'], b: TlsSpec['bind']) => a.address === b.address && a.port === b.port;

/** The routed bind that gets the TLS bind: that of the TLS services, else the only (front-door) one. */
function tlsTarget(binds: readonly RoutedBind[], specs: readonly TlsSpec[]): RoutedBind | undefined {
  const withTls = specs.find((s) => s.tls);
  return withTls ? binds.find((b) => sameBind(b.bind, withTls.bind)) : binds.length === 1 ? binds[0] : undefined;
}

/** A tls service alone on its bind with no hosts/paths serves every request there: it becomes that bind's default (a routed bind, which gets the TLS bind). */
export function tlsDefaults<S extends TlsSpec & { readonly routes?: unknown; readonly isDefaultService?: boolean }>(specs: readonly S[]): S[] {
  return specs.map((s) => (s.tls && !s.routes && !s.isDefaultService && specs.filter((o) => sameBind(o.bind, s.bind)).length === 1 ? { ...s, isDefaultService: true } : s));
}

/** Why these services cannot share one TLS bind, or null. */
export function tlsProblem(specs: ReadonlyArray<TlsSpec & { readonly mode: string }>, tls: TlsOptions | undefined): string | null {
  const withTls = specs.filter((s) => s.tls);
  if (withTls.length > 0 && !tls) return `service ${withTls[0]!.name} has tls: but no TLS bind is given (tls_bind: in the file, or --tls-bind)`;
  const other = withTls.find((s) => !sameBind(s.bind, withTls[0]!.bind));
  if (other) return `services ${withTls[0]!.name} and ${other.name} have tls: on different binds; one TLS bind serves the routes of one bind`;
  const tcp = withTls.find((s) => s.mode !== 'http');
  if (tcp) return `service ${tcp.name}: tls: terminates https, a tcp service cannot have it`;
  if (tls && specs.some((s) => sameBind(s.bind, tls.bind))) return `the TLS bind ${tls.bind.address}:${tls.bind.port} is also a service's bind`;
  return null;
}

/** Every route also says whether it redirects http and which HSTS value it sends (nginx prints them in its location). */
function withRouteTls(b: RoutedBind, byName: ReadonlyMap<string, ServiceTls | undefined>, tlsPort: number | null): RoutedBind {
  const on = tlsPort !== null;
  const route = (r: TemplateRoute) => ({ ...r, redirect: on && Boolean(byName.get(r.service)?.redirect), redirectPort: tlsPort ?? 443, hsts: on ? hstsValue(byName.get(r.service)) : null });
  const allHosts = b.allHosts.map((h) => ({ ...h, routes: h.routes.map(route) }));
  return { ...b, allHosts, hosts: allHosts.filter((h) => h.kind !== 'any'), anyHost: allHosts.find((h) => h.kind === 'any') ?? null, defaultRoute: b.defaultRoute && route(b.defaultRoute) };
}

/** Certificate names without a routed server of their own, each with the routes its requests get. */
function sniServers(b: RoutedBind, set: CertSet): BindTls['sniServers'] {
  const declared = new Set(b.allHosts.map((h) => h.host));
  const names = [...new Set(set.entries.slice(1).flatMap((e) => e.hosts))].filter((h) => !declared.has(h));
  return names.map((host) => {
    // A wildcard name stands for its names one label down: route them as such a name would be.
    const sample = host.startsWith('*.') ? `elastic-sni${host.slice(1)}` : host;
    const group: TemplateHost | undefined = b.allHosts.find((h) => hostMatches(h.host, sample)); // allHosts is in precedence order
    return { host, cert: certForHost(set, host).copy, routes: group?.routes ?? [], hasRoot: group?.hasRoot ?? false, defaultRoute: b.defaultRoute };
  });
}

export function attachTls(binds: readonly RoutedBind[], specs: readonly TlsSpec[], set: CertSet | undefined, tls: TlsOptions | undefined, withContent: boolean): TlsBindData[] {
  const target = set && tls ? tlsTarget(binds, specs) : undefined;
  const byName = new Map(specs.map((s) => [s.name, s.tls]));
  return binds.map((plain): TlsBindData => {
    const b = withRouteTls(plain, byName, plain === target && tls ? tls.bind.port : null);
    if (plain !== target || !set || !tls) return { ...b, tls: null };
    const services = Object.fromEntries(specs.map((s) => [s.name, { redirect: Boolean(s.tls?.redirect), hsts: hstsValue(s.tls) }]));
    const certs = Object.fromEntries(b.allHosts.filter((h) => h.kind !== 'any').map((h) => [h.host, certForHost(set, h.host).copy]));
    return {
      ...b,
      tls: {
        bind: tls.bind,
        crtList: set.crtList,
        defaultCert: set.entries[0]!.copy,
        hash: certsHash(set, withContent),
        services,
        certs,
        sniServers: sniServers(b, set),
      },
    };
  });
}
