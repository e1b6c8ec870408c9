import { resolve } from 'node:path';
import { ExitCode, UserError } from '../../errors.js';
import type { RenderService, ServicesFileExtras } from '../services.js';
import { parseBind, withTlsRouted } from '../services.js';
import { parseHsts, tlsOptions } from './tls-config.js';
import { tlsProblem, type TlsOptions } from './tls-data.js';

export interface TlsFlagValues {
  'tls-bind'?: string;
  'cert-dir'?: string;
  'default-cert'?: string;
  'tls-cert'?: string;
  'tls-redirect'?: boolean;
  hsts?: number;
}

/**
 * TLS from flags: `--tls-bind` with `--cert-dir`/`--default-cert` for every form; for the
 * one-service form also `--tls-cert`, `--tls-redirect`, `--hsts` (the service is served over
 * https). A services file gives the same in the file (tls_bind:, cert_dir:, default_cert:), and
 * flags given too override its TLS bind and certificate sources.
 */
export function applyTlsFlags(services: RenderService[], f: TlsFlagValues, fromFile: ServicesFileExtras | null): { services: RenderService[]; tls?: TlsOptions } {
  const flagged = tlsOptions(f['tls-bind'] ? parseBind(f['tls-bind']) : undefined, f['cert-dir'], f['default-cert']);
  const tls = flagged ?? fromFile?.tls;
  let out = services;
  if (!fromFile && tls) {
    const one = { redirect: Boolean(f['tls-redirect']), hstsMaxAge: parseHsts(f.hsts), ...(f['tls-cert'] ? { cert: resolve(f['tls-cert']) } : {}) };
    out = withTlsRouted(services.map((s) => ({ ...s, spec: { ...s.spec, tls: one } })));
  } else if (f['tls-cert'] || f['tls-redirect'] || f.hsts !== undefined) {
    throw new UserError('--tls-cert, --tls-redirect and --hsts are for one service with --tls-bind', fromFile ? 'in --config, give each service tls: { cert, redirect, hsts }' : 'add --tls-bind ADDR:PORT and --cert-dir or --default-cert', ExitCode.usage);
  }
  const problem = tlsProblem(out.map((s) => s.spec), tls);
  if (problem) throw new UserError(problem, 'see docs/render.md "TLS"', ExitCode.usage);
  return { services: out, ...(tls ? { tls } : {}) };
}
