import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { DiscoverOptions } from '../discover.js';
import { ExitCode, UserError } from '../errors.js';
import { isIdent, parseEndpoint, parsePort, printable } from '../model/validate.js';
import type { Logger } from '../runtime/logger.js';
import { toDiscoverOptions, type SelectorFlagValues } from '../discover-options.js';
import type { Balance, LbCheck, Mode, ServiceSpec } from './model.js';
import { isUrlPath } from './template.js';
import { parseServiceRoutes, routingProblem } from './routing.js';
import { parseServiceTls, tlsOptions } from './tls/tls-config.js';
import { tlsDefaults, tlsProblem, type TlsOptions } from './tls/tls-data.js';
import { readErrorPage } from './error-page.js';

/**
 * Services to render: one from flags (`--service web --bind 18400 --image ...`), or several from
 * a YAML file:
 *
 *   services:
 *     - name: web
 *       bind: 127.0.0.1:18400        # or just a port (127.0.0.1 is the default address)
 *       mode: http                   # http | tcp
 *       balance: roundrobin          # roundrobin | leastconn | source
 *       lb_check: http:/healthz      # the proxy's own check: tcp | http[:/path] | none
 *       slots: 8                     # minimum HAProxy server slots
 *       select: { image: elastic-test/web:1, port: 80 }   # the `discover` selector flags
 *       hosts: [api.example.com, "*.example.com"]  # routes on a shared bind (docs/render.md "Routing")
 *       paths: [/api]                # path prefixes (default /); strip_prefix: true removes them
 *       error_page_503: /etc/elastic/503.html   # the page of an empty service (error-page.ts)
 *   default_service: web             # requests on its bind that no route matches (else 404)
 *   error_page_503: /etc/elastic/503.html     # the same for every service without its own
 */
export interface RenderService {
  readonly spec: ServiceSpec;
  readonly discover: DiscoverOptions;
}

export interface ServiceFlagValues {
  bind?: string;
  mode?: string;
  balance?: string;
  'lb-check'?: string;
  'lb-check-interval'?: number;
  slots?: number;
  host?: string[];
  path?: string[];
  'strip-prefix'?: boolean;
  /** A custom 503 page file (error-page.ts). */
  'error-page-503'?: string;
}

const usage = (msg: string, hint: string) => new UserError(msg, hint, ExitCode.usage);

export function parseBind(text: string): { address: string; port: number } {
  if (/^\d+$/.test(text)) return { address: '127.0.0.1', port: parsePort(text, 'bind port') };
  return parseEndpoint(text);
}

export function parseLbCheck(text: string | undefined, intervalMs = 2000): LbCheck {
  const t = text ?? 'tcp';
  if (t === 'none' || t === 'tcp') return { kind: t, path: '/', intervalMs };
  const m = /^http(?::(.*))?$/.exec(t);
  const path = m?.[1] || '/';
  if (!m || !isUrlPath(path)) throw usage(`invalid proxy check "${printable(t, 60)}"`, 'use tcp, none, http or http:/path (letters, digits and /._~?=&%+- only)');
  return { kind: 'http', path, intervalMs };
}

function oneOf<T extends string>(value: string | undefined, options: readonly T[], fallback: T, what: string): T {
  if (value === undefined) return fallback;
  if ((options as readonly string[]).includes(value)) return value as T;
  throw usage(`invalid ${what} "${printable(value, 40)}"`, `use one of: ${options.join(', ')}`);
}

export function serviceSpec(name: string, f: ServiceFlagValues, defaultSlots = 8): ServiceSpec {
  if (!isIdent(name)) throw usage(`invalid service name "${printable(name, 60)}"`, 'use letters, digits, ".", "_" and "-"');
  if (!f.bind) throw usage(`service ${name} has no bind address`, 'pass --bind PORT or ADDRESS:PORT (e.g. --bind 127.0.0.1:18400)');
  const slots = f.slots ?? defaultSlots;
  if (!Number.isInteger(slots) || slots < 1 || slots > 4096) throw usage(`invalid slots ${printable(String(slots), 20)}`, 'use 1 to 4096');
  let routes;
  try {
    routes = f.host?.length || f.path?.length ? parseServiceRoutes(f.host, f.path, Boolean(f['strip-prefix'])) : undefined;
  } catch (err) {
    throw usage(`service ${name}: ${(err as Error).message}`, 'see docs/render.md "Routing" for the accepted hosts and paths');
  }
  if (f['error-page-503'] !== undefined && f.mode === 'tcp') throw usage(`service ${name}: a 503 page is for http services`, 'drop error_page_503 / --error-page-503, or use mode http');
  if (f['strip-prefix'] && !f.path?.length) throw usage(`service ${name}: strip_prefix without paths`, 'declare the path prefixes to strip (paths: / --path)');
  return {
    name,
    bind: parseBind(f.bind),
    mode: oneOf<Mode>(f.mode, ['http', 'tcp'], 'http', 'mode'),
    balance: oneOf<Balance>(f.balance, ['roundrobin', 'leastconn', 'source'], 'roundrobin', 'balance'),
    check: parseLbCheck(f['lb-check'], f['lb-check-interval'] ?? 2000),
    minSlots: slots,
    ...(routes ? { routes } : {}),
    ...(f['error-page-503'] !== undefined ? { page503: readErrorPage(f['error-page-503']) } : {}),
  };
}

export function serviceFromFlags(flags: SelectorFlagValues & ServiceFlagValues, logger?: Logger): RenderService {
  const discover = toDiscoverOptions(flags, logger);
  const name = discover.docker?.selector.service ?? discover.static?.service ?? discover.ec2?.service ?? flags.service ?? 'default';
  const spec = serviceSpec(name, flags);
  if (spec.routes && spec.mode !== 'http') throw usage(`service ${name}: --host and --path route http requests`, 'drop --mode tcp, or --host/--path');
  return { spec, discover };
}

const asStr = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : String(v));
const asList = (v: unknown): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v.map(String) : [String(v)]);

export async function loadServicesFile(file: string, logger?: Logger, extras?: ServicesFileExtras): Promise<RenderService[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check --config', ExitCode.config);
  }
  return parseServicesFile(text, file, logger, extras);
}

/** TLS options from a services file's top level (tls_bind, cert_dir, default_cert), filled by parseServicesFile. */
export interface ServicesFileExtras {
  tls?: TlsOptions;
}

export function parseServicesFile(text: string, file: string, logger?: Logger, extras: ServicesFileExtras = {}): RenderService[] {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new UserError(`${file}:${e.linePos?.[0]?.line ?? '?'}: not valid YAML: ${printable(e.message.split('\n')[0] ?? '', 120)}`, 'fix the file; see docs/render.md', ExitCode.config);
  }
  const root = doc.toJS() as { services?: unknown; default_service?: unknown; tls_bind?: unknown; cert_dir?: unknown; default_cert?: unknown; error_page_503?: unknown } | null;
  if (!root || !Array.isArray(root.services) || root.services.length === 0) throw new UserError(`${file}: expected a non-empty "services:" list`, 'see docs/render.md "Several services"', ExitCode.config);
  const seen = new Set<string>();
  const defaultService = asStr(root.default_service);
  const page503 = asStr(root.error_page_503);
  const services = root.services.map((raw: unknown, i: number): RenderService => {
    const s = (raw ?? {}) as Record<string, unknown>;
    const where = `${file}: services[${i}]`;
    try {
      const name = asStr(s.name) ?? '';
      const sel = (s.select ?? {}) as Record<string, unknown>;
      const select: SelectorFlagValues = {
        image: asStr(sel.image), name: asStr(sel.name), network: asStr(sel.network), port: asStr(sel.port),
        label: asList(sel.label), tag: asList(sel.tag), backend: asList(sel.backend), file: asStr(sel.file),
        region: asStr(sel.region), endpoint: asStr(sel.endpoint), 'docker-host': asStr(sel['docker-host']),
        check: asStr(sel.check), service: name,
      };
      if (s.strip_prefix !== undefined && typeof s.strip_prefix !== 'boolean') throw usage('strip_prefix must be true or false', 'e.g. strip_prefix: true');
      const spec = serviceSpec(name, { bind: asStr(s.bind), mode: asStr(s.mode), balance: asStr(s.balance), 'lb-check': asStr(s.lb_check), 'lb-check-interval': s.lb_check_interval === undefined ? undefined : Number(s.lb_check_interval), slots: s.slots === undefined ? undefined : Number(s.slots), host: asList(s.hosts), path: asList(s.paths), 'strip-prefix': s.strip_prefix === true, 'error-page-503': asStr(s.error_page_503) ?? page503 });
      if (seen.has(name)) throw usage(`service ${name} is defined twice`, 'service names must be unique');
      seen.add(name);
      const tls = parseServiceTls(s.tls);
      return { spec: { ...spec, ...(name === defaultService ? { isDefaultService: true } : {}), ...(tls ? { tls } : {}) }, discover: toDiscoverOptions(select, logger) };
    } catch (err) {
      if (err instanceof UserError) throw new UserError(`${where}: ${err.message}`, err.hint, ExitCode.config);
      throw err;
    }
  });
  if (defaultService !== undefined && !seen.has(defaultService)) throw new UserError(`${file}: default_service "${printable(defaultService, 60)}" is not a service in this file`, 'name one of the services listed under services:', ExitCode.config);
  // Several services may share a bind when each says which hosts/paths it takes.
  const routed = withTlsRouted(services);
  const problem = routingProblem(routed.map((s) => s.spec));
  if (problem) throw new UserError(`${file}: ${problem}`, 'see docs/render.md "Routing"', ExitCode.config);
  try {
    extras.tls = tlsOptions(root.tls_bind === undefined ? undefined : parseBind(String(root.tls_bind)), root.cert_dir, root.default_cert);
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`${file}: ${err.message}`, err.hint, ExitCode.config);
    throw err;
  }
  const tlsBad = tlsProblem(routed.map((s) => s.spec), extras.tls);
  if (tlsBad) throw new UserError(`${file}: ${tlsBad}`, 'see docs/render.md "TLS"', ExitCode.config);
  return routed;
}

/** tls-data.ts `tlsDefaults` over the services' specs. */
export function withTlsRouted(services: RenderService[]): RenderService[] {
  const specs = tlsDefaults(services.map((s) => s.spec));
  return services.map((s, i) => ({ ...s, spec: specs[i]! }));
}
