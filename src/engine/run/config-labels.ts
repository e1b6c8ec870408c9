import type { Logger } from '../runtime/logger.js';
import { toDiscoverOptions } from '../discover-options.js';
import { readErrorPage } from '../frontends/error-page.js';
import type { Path } from './schema-dsl.js';
import type { LabelRoutesServe } from './config.js';

// The validated raw shape (schema.ts guarantees the types).
type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * `routes_from_labels:` (the same as `render --routes-from-labels`): one front-door bind of HAProxy
 * or nginx, whose routes come from running containers' elastic.http.* labels. The bind is its own:
 * no service of the config may use it (`claim`), so routes from labels never mix with declared ones.
 */
export function labelRoutesServe(
  raw: Raw,
  claim: (key: string, path: Path, what: string) => void,
  wrap: <T>(path: Path, fn: () => T) => T | undefined,
  logger?: Logger,
): LabelRoutesServe | undefined {
  const r = raw.routes_from_labels as Raw;
  const proxy = r.haproxy ? 'haproxy' : 'nginx';
  const x = r[proxy] as Raw;
  const at: Path = ['routes_from_labels', proxy];
  const address = x.address ?? '127.0.0.1';
  claim(`tcp/${address}:${x.port}`, [...at, 'port'], `${address}:${x.port}`);
  const page503 = pageOf(x, raw, at, wrap);
  const discover = wrap(['routes_from_labels'], () => toDiscoverOptions({ label: r.label, network: r.network, 'docker-host': r.host, service: 'labels' }, logger));
  if (!discover?.docker) return undefined;
  return {
    proxy,
    serve: { address, port: x.port, mode: 'http', balance: x.balance ?? 'roundrobin', lbCheck: x.lb_check ?? 'tcp', slots: x.slots ?? 8, ...page503 },
    discover,
  };
}

/**
 * The 503 page of an http service's `haproxy:`/`nginx:` block at `at`: its own error_page_503, else
 * the top-level one; read and checked now (error-page.ts) so --check names the line.
 */
export function pageOf(x: Raw, raw: Raw, at: Path, wrap: <T>(path: Path, fn: () => T) => T | undefined): { page503: string } | Record<string, never> {
  const file = x.error_page_503 ?? raw.error_page_503;
  const page503 = file ? wrap([...at, 'error_page_503'], () => readErrorPage(file)) : undefined;
  return page503 ? { page503 } : {};
}
