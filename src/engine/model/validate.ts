import { isIP } from 'node:net';
import { ExitCode, UserError } from '../errors.js';

/**
 * Validation of untrusted text at the edge of the engine. Container names, labels and EC2 tags
 * are data: anything that reaches a rule, a config file or a terminal passes through here.
 */

/** Printable, no control characters (newlines, escapes), bounded length. */
export function isSafeText(s: string, max = 256): boolean {
  // eslint-disable-next-line no-control-regex
  return s.length <= max && !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(s);
}

/** Replace control characters so a log line or table cell cannot move the cursor or add lines. */
export function printable(s: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/** Identifiers that may appear in configs, chain comments and file names. */
export const IDENT_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export function isIdent(s: string): boolean {
  return IDENT_RE.test(s);
}

/** Make an identifier out of arbitrary text (for config names), deterministic. */
export function toIdent(s: string): string {
  const cleaned = s.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  return (cleaned || 'x').slice(0, 63);
}

export function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

export function parsePort(text: string, what = 'port'): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!isPort(n)) {
    throw new UserError(`invalid ${what} "${printable(text, 40)}"`, 'use a number from 1 to 65535', ExitCode.usage);
  }
  return n;
}

/** Parse `ip:port` or `[ipv6]:port`. Host names are refused: a backend is an address. */
export function parseEndpoint(text: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  const bad = () =>
    new UserError(
      `invalid backend "${printable(text, 60)}"`,
      'write it as IP:PORT, e.g. 198.18.0.10:8080 or [2001:db8::1]:80',
      ExitCode.usage,
    );
  if (!m) throw bad();
  const address = m[1]!;
  if (isIP(address) === 0) throw bad();
  const port = Number(m[2]);
  if (!isPort(port)) throw bad();
  return { address, port };
}

/**
 * Parse `ip:port` with an optional `@WEIGHT` (0-256; 0 = no new connections), as `--backend` and
 * static backend lists take it. Without `@` the weight is undefined (served with 1).
 */
export function parseWeightedEndpoint(text: string): { address: string; port: number; weight?: number } {
  const at = text.lastIndexOf('@');
  if (at < 0) return parseEndpoint(text);
  const w = text.slice(at + 1);
  if (!/^\d{1,3}$/.test(w) || Number(w) > 256) {
    throw new UserError(`invalid weight in backend "${printable(text, 60)}"`, 'write it as IP:PORT@WEIGHT with a weight 0-256 (0 = no new connections), e.g. 198.18.0.10:8080@3', ExitCode.usage);
  }
  return { ...parseEndpoint(text.slice(0, at)), weight: Number(w) };
}

/** Parse `k=v` (selector labels, tags). The key must be non-empty and printable. */
export function parseKeyValue(text: string, flag: string): { key: string; value: string } {
  const i = text.indexOf('=');
  if (i <= 0) {
    throw new UserError(
      `${flag} "${printable(text, 60)}" has no "="`,
      `write it as ${flag} key=value`,
      ExitCode.usage,
    );
  }
  const key = text.slice(0, i);
  const value = text.slice(i + 1);
  if (!isSafeText(key) || !isSafeText(value)) {
    throw new UserError(`${flag} contains control characters`, 'use printable text only', ExitCode.usage);
  }
  return { key, value };
}

export function isAddress(s: string): boolean {
  return isIP(s) !== 0;
}
