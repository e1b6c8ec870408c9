import { createHash } from 'node:crypto';
import type { Backend, BackendSet } from '../model/backend.js';
import { printable, toIdent } from '../model/validate.js';
import type { ServiceSpec } from './model.js';
import { parseHostPattern, parsePathPrefix } from './routes.js';

/**
 * Routes from container labels (issue 16, the docker-gen / Traefik workflow), pure:
 *
 *   elastic.http.host=api.example.com[,*.example.com]   required: the hosts it serves
 *   elastic.http.path=/api[,/v2]                          optional path prefixes (default /)
 *   elastic.http.port=8080                                which container port (discovery: portLabel)
 *   elastic.weight=3                                      weight (model.ts, as everywhere)
 *   elastic.http.tls=true|redirect|false                  with --tls-bind: redirect sends http to https
 *
 * Containers with the same host and path form one service, named from them (an identifier plus
 * a short hash, so two routes never share a name). Label values are untrusted: a container with
 * any invalid value is skipped as a whole, with a reason, and nothing of it is rendered.
 */
export const HOST_LABEL = 'elastic.http.host';
export const PATH_LABEL = 'elastic.http.path';
export const PORT_LABEL = 'elastic.http.port';
export const TLS_LABEL = 'elastic.http.tls';

export interface LabelRoutes {
  readonly specs: ServiceSpec[];
  readonly backends: Record<string, Backend[]>;
  readonly skipped: Array<{ id: string; reason: string }>;
  /** Containers that asked for TLS (served over http only when the render has no TLS bind). */
  readonly tlsIgnored: string[];
}

/** The service name of one host and path: readable, an identifier, unique by the hash. */
export function routeServiceName(host: string, path: string): string {
  const hash = createHash('sha256').update(`${host} ${path}`).digest('hex').slice(0, 8);
  const readable = toIdent(`${host.replace(/^\*\./, 'wild.')}${path === '/' ? '' : path.replace(/\//g, '_')}`).slice(0, 50);
  return `${readable}-${hash}`;
}

const list = (text: string) => text.split(',').map((s) => s.trim());

/** What a container's labels ask for, or why it is skipped. */
function parseLabels(b: Backend): { hosts: string[]; paths: string[]; tls: boolean; redirect: boolean } | { reason: string } {
  const hosts: string[] = [];
  for (const text of list(b.labels[HOST_LABEL] ?? '')) {
    const r = parseHostPattern(text);
    if ('error' in r) return { reason: `label ${HOST_LABEL}: "${printable(text, 60)}": ${r.error}` };
    hosts.push(r.host);
  }
  const paths: string[] = [];
  for (const text of b.labels[PATH_LABEL] === undefined ? ['/'] : list(b.labels[PATH_LABEL])) {
    const r = parsePathPrefix(text);
    if ('error' in r) return { reason: `label ${PATH_LABEL}: "${printable(text, 60)}": ${r.error}` };
    paths.push(r.path);
  }
  const tls = b.labels[TLS_LABEL];
  if (tls !== undefined && !['true', 'redirect', 'false'].includes(tls)) return { reason: `label ${TLS_LABEL}: "${printable(tls, 20)}" is not true, redirect or false` };
  return { hosts: [...new Set(hosts)], paths: [...new Set(paths)], tls: tls === 'true' || tls === 'redirect', redirect: tls === 'redirect' };
}

export function labelRoutes(found: BackendSet, base: Omit<ServiceSpec, 'name' | 'routes' | 'isDefaultService'>): LabelRoutes {
  const backends: Record<string, Backend[]> = {};
  const specs = new Map<string, ServiceSpec>();
  const skipped: LabelRoutes['skipped'] = [];
  const tlsIgnored: string[] = [];
  for (const b of found) {
    const want = parseLabels(b);
    if ('reason' in want) {
      skipped.push({ id: b.id, reason: want.reason });
      continue;
    }
    if (want.tls) tlsIgnored.push(b.id);
    for (const host of want.hosts) {
      for (const path of want.paths) {
        const name = routeServiceName(host, path);
        if (!specs.has(name)) specs.set(name, { ...base, name, routes: { hosts: [host], paths: [path], stripPrefix: false } });
        // Any container of a route asking for the redirect makes the route redirect.
        if (want.tls) specs.set(name, { ...specs.get(name)!, tls: { redirect: want.redirect || Boolean(specs.get(name)!.tls?.redirect), hstsMaxAge: 0 } });
        (backends[name] ??= []).push({ ...b, service: name });
      }
    }
  }
  const sorted = [...specs.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  return { specs: sorted, backends, skipped, tlsIgnored };
}
