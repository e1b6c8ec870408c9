/**
 * HTTP routes of a shared bind (issue 16, the pure part): which service answers a request, by
 * its Host header (or TLS SNI) and path. Host names and paths come from config files and from
 * container labels (untrusted), so they are validated here before anything renders them.
 *
 * Precedence (docs/render.md, "Routing"):
 *   1. the host pattern: an exact name beats any wildcard; of two wildcards the longer suffix wins;
 *   2. within the routes of that one host pattern, the longest path prefix wins;
 *   3. no host pattern matches, or no path prefix of the chosen host does: the default service,
 *      else a 404 page.
 * Host first, then path, as nginx picks a `server` then a `location`. The issue suggested the
 * path first; host first is chosen because routes also come from container labels: with the path
 * first, any container labelled with a wildcard host and a long path could take requests of an
 * exact-host site it does not own (`*.example.com` + `/api/v2` would beat `shop.example.com` +
 * `/api`). A site's own routes never depend on what other sites declare.
 */

/** The host pattern of routes that declare paths but no hosts: any Host, the least specific. */
export const ANY_HOST = '*';

export interface Route {
  readonly service: string;
  /** Normalized (lower case, no port, no trailing dot): `api.example.com`, `*.example.com` or ANY_HOST. */
  readonly host: string;
  /** Normalized prefix: `/`, `/api` (no trailing slash but for the root). */
  readonly path: string;
  readonly stripPrefix: boolean;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const MAX_HOST = 253;
const MAX_PATH = 200;

/** A host pattern as an operator or a label wrote it, or the reason it is refused. */
export function parseHostPattern(text: string): { host: string } | { error: string } {
  const raw = text.toLowerCase().replace(/\.$/, '');
  if (raw.length === 0) return { error: 'empty host' };
  if (raw.length > MAX_HOST) return { error: `host longer than ${MAX_HOST} characters` };
  const wildcard = raw.startsWith('*.');
  const labels = (wildcard ? raw.slice(2) : raw).split('.');
  if (labels.length < (wildcard ? 2 : 1)) return { error: 'a wildcard needs at least two labels after "*." (e.g. *.example.com)' };
  for (const l of labels) if (!LABEL.test(l)) return { error: `"${l.slice(0, 40)}" is not a host name label (letters, digits and inner hyphens, 1-63 characters)` };
  return { host: raw };
}

/** A path prefix, or the reason it is refused: only characters no proxy config gives meaning to. */
export function parsePathPrefix(text: string): { path: string } | { error: string } {
  const raw = text;
  if (!raw.startsWith('/')) return { error: 'a path starts with "/"' };
  if (raw.length > MAX_PATH) return { error: `path longer than ${MAX_PATH} characters` };
  if (!/^\/[A-Za-z0-9._~/-]*$/.test(raw)) return { error: 'a path may hold only letters, digits and . _ ~ / -' };
  if (/\/\/|\/\.\.?(\/|$)/.test(raw)) return { error: 'a path may not hold "//", "/./" or "/../"' };
  return { path: raw.length > 1 ? raw.replace(/\/+$/, '') : raw };
}

/** The Host header as a request sends it: lower case, port and trailing dot removed. */
export function requestHost(header: string): string {
  const h = header.trim().toLowerCase();
  const bare = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.replace(/:\d+$/, '');
  return bare.replace(/\.$/, '');
}

export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === ANY_HOST) return true;
  return pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1 : pattern === host;
}

/** Whether `prefix` is a prefix of `path` on a segment boundary (`/api` matches `/api/x`, not `/apix`). */
export function pathMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** More specific host patterns first: exact names, then wildcards by suffix length, then any host. */
function hostRank(pattern: string): number {
  if (pattern === ANY_HOST) return 0;
  return pattern.startsWith('*.') ? pattern.length : 10_000 + pattern.length;
}

/**
 * The routes grouped by host pattern, most specific host first, and within each host the longest
 * path first: the order in which a config that tests rules one by one (HAProxy `use_backend`)
 * implements the precedence, given that a request is first bound to its host pattern. Duplicate
 * (host, path) pairs are an error: two services would claim the same requests.
 */
export function routeTable(routes: readonly Route[]): { host: string; routes: Route[] }[] {
  const byHost = new Map<string, Route[]>();
  for (const r of routes) {
    const list = byHost.get(r.host) ?? [];
    const same = list.find((x) => x.path === r.path);
    if (same && same.service !== r.service) throw new Error(`${r.host}${r.path} is claimed by two services: ${same.service} and ${r.service}`);
    if (!same) list.push(r);
    byHost.set(r.host, list);
  }
  return [...byHost.entries()]
    .sort(([a], [b]) => hostRank(b) - hostRank(a) || (a < b ? -1 : a > b ? 1 : 0))
    .map(([host, list]) => ({ host, routes: [...list].sort((a, b) => b.path.length - a.path.length || (a.path < b.path ? -1 : 1)) }));
}

/** The route that answers a request, or undefined (then: the default service or a 404 page). */
export function matchRoute(table: readonly { host: string; routes: readonly Route[] }[], hostHeader: string, path: string): Route | undefined {
  const host = requestHost(hostHeader);
  const group = table.find((g) => hostMatches(g.host, host));
  return group?.routes.find((r) => pathMatches(r.path, path.split('?')[0]!));
}
