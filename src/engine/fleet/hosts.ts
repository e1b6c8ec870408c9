import { createHash } from 'node:crypto';
import { isMap, isPair, isScalar, LineCounter, parseDocument, stringify } from 'yaml';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import { ConfigError, parseConfig, type RunConfig } from '../run/config.js';
import { checkName, NAME_RE } from './store.js';

/**
 * One file for a fleet whose hosts differ: `elastic.yaml` plus a top-level `hosts:` section,
 * keyed by host name, of per-host overrides merged over the rest of the file:
 *
 *   hosts:
 *     lb-2:
 *       services:
 *         web: { haproxy: { port: 8081 } }   # merged into the service named web
 *         admin: null                         # lb-2 does not serve admin
 *       metrics: { prometheus: { port: 9101 } }
 *
 * Objects merge key by key, anything else replaces, `null` removes. A host without an entry gets
 * the file as it is. What a host applies is a plain elastic.yaml text (the `hosts:` lines blanked,
 * so line numbers stay those of the pushed file; with an entry, the merged document), checked by
 * the same parser as `run --check`.
 */
type Obj = Record<string, unknown>;

export interface FleetFile {
  /** The file without its `hosts:` lines (blank lines in their place: line numbers unchanged). */
  readonly base: string;
  readonly hosts: Readonly<Record<string, Obj>>;
}

export function splitHosts(text: string, file: string): FleetFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0 || !isMap(doc.contents)) return { base: text, hosts: {} }; // parseConfig reports it
  const pair = doc.contents.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === 'hosts');
  if (!pair || !isScalar(pair.key)) return { base: text, hosts: {} };
  const first = lines.linePos(pair.key.range![0]).line;
  const valueEnd = (pair.value as { range?: [number, number, number] } | null)?.range?.[1] ?? pair.key.range![1];
  const last = lines.linePos(Math.max(valueEnd - 1, pair.key.range![0])).line;
  const raw = (pair.value as { toJSON?: () => unknown } | null)?.toJSON?.() ?? null;
  const at = (msg: string) => new ConfigError([`${file}:${first}: hosts: ${msg}`]);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw at('must be a map of host name to overrides');
  const hosts: Record<string, Obj> = {};
  for (const [name, o] of Object.entries(raw as Obj)) {
    if (!NAME_RE.test(name)) throw at(`${JSON.stringify(printable(name, 64))} is not a host name (1-63 of a-z 0-9 . _ -)`);
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw at(`${name}: must be a map of overrides`);
    for (const k of ['version', 'hosts', 'name']) if (k in (o as Obj)) throw at(`${name}.${k}: cannot differ per host`);
    hosts[name] = o as Obj;
  }
  const base = text
    .split('\n')
    .map((l, i) => (i + 1 >= first && i + 1 <= last ? '' : l))
    .join('\n');
  return { base, hosts };
}

/** The elastic.yaml text host `host` applies, and the virtual file name its errors carry. */
export function textForHost(ff: FleetFile, host: string): string {
  const o = ff.hosts[host];
  if (!o) return ff.base;
  const doc = parseDocument(ff.base).toJS() as Obj;
  return stringify(mergeHost(doc, o, host), { lineWidth: 0 });
}

/** A digest of what a host applies: the RunConfig hash of its text (12 hex). */
export function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

export function mergeHost(base: Obj, o: Obj, host: string): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(o)) {
    if (k === 'services' || k === 'deploys') {
      out[k] = mergeNamed(k, (base[k] ?? []) as Obj[], v, host);
    } else out[k] = merge(base[k], v);
    if (out[k] === undefined) delete out[k];
  }
  return out;
}

function merge(a: unknown, b: unknown): unknown {
  if (b === null) return undefined;
  if (isObj(a) && isObj(b)) {
    const out: Obj = { ...a };
    for (const [k, v] of Object.entries(b)) {
      out[k] = merge(a[k], v);
      if (out[k] === undefined) delete out[k];
    }
    return out;
  }
  return b;
}

/** `services:` / `deploys:` overrides are keyed by the entry's name (`service` for deploys). */
function mergeNamed(section: 'services' | 'deploys', list: Obj[], o: unknown, host: string): Obj[] {
  const key = section === 'services' ? 'name' : 'service';
  if (!isObj(o)) throw new UserError(`hosts.${host}.${section}: must be a map of ${key} to overrides`, 'see docs/fleet.md', ExitCode.config);
  for (const name of Object.keys(o)) {
    if (!list.some((e) => e[key] === name)) throw new UserError(`hosts.${host}.${section}.${printable(name, 64)}: no such entry in ${section}:`, 'override only what the file defines', ExitCode.config);
  }
  return list.flatMap((e) => {
    const v = o[String(e[key])];
    if (v === undefined) return [e];
    if (v === null) return [];
    return [merge(e, v) as Obj];
  });
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export interface FleetCheck {
  readonly base: RunConfig;
  readonly hosts: Readonly<Record<string, RunConfig>>;
}

/**
 * Validate a fleet file exactly as `run --check` would: the file (without `hosts:`) with its own
 * lines, then each host's merged text, whose problems name the host instead of a line.
 */
export function checkFleetFile(text: string, file: string, env?: NodeJS.ProcessEnv): FleetCheck {
  const ff = splitHosts(text, file);
  const base = parseConfig(ff.base, file, { env });
  const hosts: Record<string, RunConfig> = {};
  for (const h of Object.keys(ff.hosts)) {
    checkName('host', h);
    let merged: string;
    try {
      merged = textForHost(ff, h);
    } catch (err) {
      if (err instanceof UserError) throw new ConfigError([`${file}: ${err.message}`]);
      throw err;
    }
    try {
      hosts[h] = parseConfig(merged, `${file} (hosts.${h})`, { env });
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(err.problems.map((p) => p.replace(/^(.* \(hosts\.[^)]+\)):\d+: /, '$1: ')));
      throw err;
    }
  }
  return { base, hosts };
}
