import type { RoutedBind, TemplateRoute } from './routing.js';

/**
 * What a routed service's HAProxy backend does itself once a route chose it (pure): redirect
 * plain http to https, add HSTS, strip its path prefix. Redirect and HSTS are per service, so
 * they sit in the service's backend and cost only its requests, instead of a route variable
 * every request sets and every rule reads (docs/BENCHMARKS.md "render TLS ... rules traced").
 */
export interface RoutedRules {
  /** The TLS bind's port when plain-http requests are redirected to https, else null. */
  readonly redirectPort: number | null;
  /** The Strict-Transport-Security value on https responses, else null. */
  readonly hsts: string | null;
  /** Routes (their txn.route number) whose prefix is stripped, and that prefix. */
  readonly strips: ReadonlyArray<{ readonly num: number; readonly path: string }>;
}

/** A route as attachTls leaves it (tls-data.ts withRouteTls). */
type TlsRoute = TemplateRoute & { readonly redirect?: boolean; readonly redirectPort?: number; readonly hsts?: string | null };

export function routedRules(binds: readonly RoutedBind[]): Record<string, RoutedRules> {
  const out: Record<string, RoutedRules> = {};
  for (const b of binds) {
    const routes: TlsRoute[] = [...b.allHosts.flatMap((h) => h.routes), ...(b.defaultRoute ? [b.defaultRoute] : [])];
    for (const r of routes) {
      const o = out[r.service] ?? { redirectPort: null, hsts: null, strips: [] };
      out[r.service] = {
        redirectPort: r.redirect && r.redirectPort !== undefined ? r.redirectPort : o.redirectPort,
        hsts: r.hsts ?? o.hsts,
        strips: r.stripPrefix ? [...o.strips, { num: r.num, path: r.path }] : o.strips,
      };
    }
  }
  return out;
}
