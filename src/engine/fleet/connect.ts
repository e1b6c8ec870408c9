import { readFileSync } from 'node:fs';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import { checkName } from './store.js';

/**
 * Where the fleet store is and how to authenticate, from flags and the environment. Secrets
 * (client key, password) come from a file or the environment, never argv: flags only name files.
 *   ELASTIC_ETCD=URL[,URL...]           --etcd
 *   ELASTIC_ETCD_CA / _CERT / _KEY      --etcd-ca / --etcd-cert / --etcd-key (PEM file paths)
 *   ELASTIC_ETCD_USER                   --etcd-user
 *   ELASTIC_ETCD_PASSWORD, or ELASTIC_ETCD_PASSWORD_FILE / --etcd-password-file (first line)
 *   ELASTIC_FLEET                       --fleet
 */
export interface StoreFlags {
  etcd?: string;
  fleet?: string;
  'etcd-ca'?: string;
  'etcd-cert'?: string;
  'etcd-key'?: string;
  'etcd-user'?: string;
  'etcd-password-file'?: string;
}

export interface ConnectOptions {
  readonly fleet: string;
  readonly endpoints: readonly string[];
  readonly tls?: { readonly ca: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  readonly auth?: { readonly username: string; readonly password: string };
  /** ms to wait for a first answer before the store counts as unreachable (1000-60000). */
  readonly dialTimeoutMs: number;
}

const MAX_ENDPOINTS = 16;

/** Parse and check `URL[,URL...]`: http(s)://host:port, nothing else (no path, no credentials). */
export function parseEndpoints(list: string): string[] {
  const out: string[] = [];
  for (const raw of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw badEndpoint(raw, 'not a URL');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw badEndpoint(raw, 'scheme must be http or https');
    if (!u.port) throw badEndpoint(raw, 'needs a port (etcd listens on 2379 by default)');
    if (u.username || u.password) throw badEndpoint(raw, 'credentials in a URL would show in argv and logs; use ELASTIC_ETCD_USER / ELASTIC_ETCD_PASSWORD_FILE');
    if ((u.pathname && u.pathname !== '/') || u.search || u.hash) throw badEndpoint(raw, 'no path or query');
    out.push(`${u.protocol}//${u.host}`);
  }
  if (out.length === 0) throw new UserError('no etcd endpoint given', 'pass --etcd http://HOST:2379[,URL...] or set ELASTIC_ETCD', ExitCode.usage);
  if (out.length > MAX_ENDPOINTS) throw new UserError(`${out.length} etcd endpoints given (at most ${MAX_ENDPOINTS})`, 'list the members of one cluster', ExitCode.usage);
  const schemes = new Set(out.map((e) => e.split(':')[0]));
  if (schemes.size > 1) throw new UserError('etcd endpoints mix http and https', 'use one scheme for every member', ExitCode.usage);
  return out;
}

function badEndpoint(raw: string, why: string): UserError {
  return new UserError(`bad etcd endpoint ${JSON.stringify(printable(raw, 120))}: ${why}`, 'e.g. --etcd http://127.0.0.1:2379,http://127.0.0.1:22379', ExitCode.usage);
}

/** Resolve flags + environment into what the store client needs; reads the PEM and password files. */
export function connectOptions(flags: StoreFlags, env: NodeJS.ProcessEnv = process.env, read: (path: string) => Buffer = (p) => readFileSync(p)): ConnectOptions {
  const fleet = flags.fleet ?? env.ELASTIC_FLEET;
  if (!fleet) throw new UserError('no fleet named', 'pass --fleet NAME or set ELASTIC_FLEET', ExitCode.usage);
  checkName('fleet', fleet);
  const endpoints = parseEndpoints(flags.etcd ?? env.ELASTIC_ETCD ?? '');
  const file = (what: string, path: string): Buffer => {
    try {
      return read(path);
    } catch (err) {
      throw new UserError(`cannot read the etcd ${what} ${printable(path, 200)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check the path and its permissions', ExitCode.config);
    }
  };
  const caPath = flags['etcd-ca'] ?? env.ELASTIC_ETCD_CA;
  const certPath = flags['etcd-cert'] ?? env.ELASTIC_ETCD_CERT;
  const keyPath = flags['etcd-key'] ?? env.ELASTIC_ETCD_KEY;
  if (Boolean(certPath) !== Boolean(keyPath)) throw new UserError('a client certificate needs its key (and the key its certificate)', 'pass both --etcd-cert and --etcd-key', ExitCode.usage);
  if ((caPath || certPath) && !endpoints[0]!.startsWith('https:')) throw new UserError('TLS files given for http:// endpoints', 'use https:// URLs with --etcd-ca/--etcd-cert', ExitCode.usage);
  const tls = caPath ? { ca: file('CA', caPath), cert: certPath ? file('certificate', certPath) : undefined, key: keyPath ? file('key', keyPath) : undefined } : undefined;
  if (!tls && certPath) throw new UserError('a client certificate needs the CA that signed the server', 'pass --etcd-ca (or ELASTIC_ETCD_CA)', ExitCode.usage);

  const username = flags['etcd-user'] ?? env.ELASTIC_ETCD_USER;
  const pwFile = flags['etcd-password-file'] ?? env.ELASTIC_ETCD_PASSWORD_FILE;
  let password = env.ELASTIC_ETCD_PASSWORD;
  if (password === undefined && pwFile) password = file('password file', pwFile).toString('utf8').split('\n')[0] ?? '';
  if (password !== undefined && !username) throw new UserError('an etcd password without a user', 'pass --etcd-user or set ELASTIC_ETCD_USER', ExitCode.usage);
  if (username && password === undefined) throw new UserError(`no password for etcd user ${printable(username, 64)}`, 'set ELASTIC_ETCD_PASSWORD or ELASTIC_ETCD_PASSWORD_FILE (never on the command line)', ExitCode.usage);
  const auth = username ? { username, password: password! } : undefined;

  const dial = Number(env.ELASTIC_ETCD_DIAL_TIMEOUT_MS ?? 5000);
  if (!Number.isInteger(dial) || dial < 1000 || dial > 60_000) throw new UserError('ELASTIC_ETCD_DIAL_TIMEOUT_MS must be 1000-60000', 'unset it for the default (5000)', ExitCode.usage);
  return { fleet, endpoints, tls, auth, dialTimeoutMs: dial };
}
