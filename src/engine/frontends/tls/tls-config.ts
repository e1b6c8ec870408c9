import { resolve } from 'node:path';
import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';
import { HSTS_MAX, type ServiceTls, type TlsOptions } from './tls-data.js';

/**
 * TLS settings from a services file, elastic.yaml or flags:
 *
 *   tls_bind: 0.0.0.0:443          # the https bind of the routed bind whose services have tls:
 *   cert_dir: /etc/elastic/certs   # HOST.pem, _.example.com.pem (wildcard), default.pem
 *   default_cert: /etc/elastic/default.pem
 *   services:
 *     - name: api
 *       tls: { cert: /etc/elastic/api.pem, redirect: true, hsts: 31536000 }
 */
const bad = (msg: string, hint: string) => new UserError(msg, hint, ExitCode.config);

/** A service's `tls:` (true, or a map), or undefined. `hsts`: true (one year), false, or seconds 0-HSTS_MAX. */
export function parseServiceTls(raw: unknown): ServiceTls | undefined {
  if (raw === undefined || raw === null || raw === false) return undefined;
  if (raw === true) return { redirect: false, hstsMaxAge: 0 };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('tls must be true or a map { cert, redirect, hsts }', 'e.g. tls: { redirect: true }');
  const t = raw as Record<string, unknown>;
  for (const k of Object.keys(t)) if (!['cert', 'redirect', 'hsts'].includes(k)) throw bad(`tls: unknown key "${printable(k, 30)}"`, 'tls takes cert, redirect and hsts');
  if (t.cert !== undefined && (typeof t.cert !== 'string' || t.cert === '')) throw bad('tls.cert must be a file path', 'a PEM file: certificate chain then private key');
  if (t.redirect !== undefined && typeof t.redirect !== 'boolean') throw bad('tls.redirect must be true or false', 'e.g. redirect: true');
  return { ...(t.cert ? { cert: resolve(String(t.cert)) } : {}), redirect: t.redirect === true, hstsMaxAge: parseHsts(t.hsts) };
}

export function parseHsts(v: unknown): number {
  if (v === undefined || v === false) return 0;
  if (v === true) return 31_536_000;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > HSTS_MAX) throw bad(`tls.hsts ${printable(String(v), 20)} is not a max-age in seconds 0-${HSTS_MAX}`, 'true (one year), false, or seconds');
  return n;
}

/** The file-level / flag-level TLS options, or undefined when no TLS bind is asked for. */
export function tlsOptions(bind: { address: string; port: number } | undefined, certDir: unknown, defaultCert: unknown): TlsOptions | undefined {
  if (!bind) {
    if (certDir !== undefined || defaultCert !== undefined) throw new UserError('a certificate directory or default certificate without a TLS bind', 'add tls_bind: / --tls-bind ADDR:PORT', ExitCode.usage);
    return undefined;
  }
  if (certDir === undefined && defaultCert === undefined) throw new UserError('a TLS bind needs certificates', 'give cert_dir: / --cert-dir DIR (HOST.pem files, default.pem) or default_cert: / --default-cert FILE', ExitCode.usage);
  return { bind, ...(certDir !== undefined ? { certDir: resolve(String(certDir)) } : {}), ...(defaultCert !== undefined ? { defaultCert: resolve(String(defaultCert)) } : {}) };
}
