import { parseDocument, YAMLParseError } from 'yaml';
import { WEIGHT_LABEL, sortBackends, type Backend, type BackendSet } from '../../model/backend.js';
import { ExitCode, UserError } from '../../errors.js';
import { isAddress, isIdent, isPort, isSafeText, parseWeightedEndpoint, printable } from '../../model/validate.js';

/**
 * Static backends: `--backend ip:port` flags, or a YAML/JSON file of the form
 *
 *   backends:
 *     - 198.18.0.10:8080                 # short form (`198.18.0.10:8080@3`: weight 3)
 *     - { address: 198.18.0.11, port: 8080, name: b, service: web, weight: 2, labels: { zone: a } }
 *
 * A weight (0-256) becomes the `elastic.weight` label, which render and map-image both read.
 *
 * (a bare list at the top level is accepted too). Errors name the file, the entry and the line.
 */
export function staticBackend(address: string, port: number, service: string, extra: { name?: string; labels?: Record<string, string> } = {}): Backend {
  const ep = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  return {
    id: `static:${ep}`,
    name: extra.name ?? ep,
    service,
    source: 'static',
    address,
    port,
    state: 'running',
    health: 'none',
    labels: extra.labels ?? {},
    since: new Date(0).toISOString(),
  };
}

/** `IP:PORT` or `IP:PORT@WEIGHT` as a static backend (the weight as its `elastic.weight` label). */
function weightedBackend(text: string, service: string): Backend {
  const { address, port, weight } = parseWeightedEndpoint(text);
  return staticBackend(address, port, service, weight === undefined ? {} : { labels: { [WEIGHT_LABEL]: String(weight) } });
}

export function backendsFromFlags(values: readonly string[], service: string): BackendSet {
  return sortBackends(values.map((v) => weightedBackend(v, service)));
}

export function parseStaticFile(text: string, file: string, service: string): BackendSet {
  const doc = parseDocument(text, { prettyErrors: false });
  const lineOf = (offset: number | undefined) => (offset === undefined ? '?' : String(text.slice(0, offset).split('\n').length));
  if (doc.errors.length > 0) {
    const e = doc.errors[0] as YAMLParseError;
    throw new UserError(
      `${file}:${e.linePos?.[0]?.line ?? lineOf(e.pos?.[0])}: not valid YAML/JSON: ${printable(e.message.split('\n')[0] ?? '', 120)}`,
      'fix the file; see README "Static backends" for the format',
      ExitCode.config,
    );
  }
  const root = doc.toJS() as unknown;
  const list = Array.isArray(root) ? root : (root as { backends?: unknown } | null)?.backends;
  if (!Array.isArray(list)) {
    throw new UserError(`${file}: expected a "backends:" list`, 'see README "Static backends" for the format', ExitCode.config);
  }
  const items = (doc.get('backends', true) ?? doc.contents) as { items?: Array<{ range?: [number, number, number] }> } | null;
  const out: Backend[] = [];
  list.forEach((entry: unknown, i: number) => {
    const where = `${file}:${lineOf(items?.items?.[i]?.range?.[0])}: backends[${i}]`;
    const fail = (why: string): never => {
      throw new UserError(`${where}: ${why}`, 'each entry is "IP:PORT[@WEIGHT]" or {address, port, name?, service?, weight?, labels?}', ExitCode.config);
    };
    if (typeof entry === 'string') {
      try {
        out.push(weightedBackend(entry, service));
      } catch {
        fail(`invalid endpoint "${printable(entry, 60)}"`);
      }
      return;
    }
    if (!entry || typeof entry !== 'object') fail('not a string or a mapping');
    const e = entry as Record<string, unknown>;
    const address = String(e.address ?? '');
    const port = Number(e.port);
    if (!isAddress(address)) fail(`invalid address "${printable(address, 60)}"`);
    if (!isPort(port)) fail(`invalid port "${printable(String(e.port), 20)}"`);
    const name = e.name === undefined ? undefined : String(e.name);
    if (name !== undefined && !isSafeText(name, 128)) fail('name has control characters');
    const svc = e.service === undefined ? service : String(e.service);
    if (!isIdent(svc)) fail(`invalid service name "${printable(svc, 60)}" (letters, digits, . _ -)`);
    const labels: Record<string, string> = {};
    if (e.labels !== undefined) {
      if (typeof e.labels !== 'object' || e.labels === null) fail('labels must be a mapping');
      for (const [k, v] of Object.entries(e.labels as Record<string, unknown>)) {
        if (!isSafeText(k, 128) || !isSafeText(String(v), 1024)) fail('labels have control characters');
        labels[k] = String(v);
      }
    }
    if (e.weight !== undefined) {
      if (!Number.isInteger(e.weight) || (e.weight as number) < 0 || (e.weight as number) > 256) fail('weight must be a whole number 0-256');
      labels[WEIGHT_LABEL] = String(e.weight);
    }
    out.push(staticBackend(address, port, svc, { name, labels }));
  });
  return sortBackends(out);
}
