import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import type { ProxyKind } from './model.js';

/**
 * A custom 503 page (`error_page_503: FILE`, `--error-page-503 FILE`): the body a service with no
 * backend answers, with `Retry-After`, on HAProxy and nginx.
 *
 * The page is read once, validated, and embedded in the rendered config (HAProxy
 * `http-error ... string`, nginx `return 503 "..."`): what is served is exactly what was
 * validated, the proxy never reads the operator's file itself (nginx workers run as another
 * user), and an edited page changes the config (a reload on the next render), never a live file
 * the proxy depends on. The file is trusted like the config: a regular file (not a symlink),
 * owned by root or by the user running elastic, writable by no one else; at most
 * PAGE_MAX_BYTES of UTF-8 text (tabs and newlines, no other control characters), and its nginx
 * form at most NGINX_TOKEN_MAX bytes (nginx reads a config token into a 4 KiB buffer).
 */
export const PAGE_MAX_BYTES = 3072;
const NGINX_TOKEN_MAX = 4000;
const NGINX_DOLLAR = 'elastic_dollar';

const refuse = (file: string, why: string) => new UserError(`error page ${printable(file, 120)}: ${why}`, 'use a small HTML file owned by root (or you), writable by no one else (docs/render.md "No backends")', ExitCode.config);

export function readErrorPage(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw refuse(file, code === 'ELOOP' ? 'is a symlink; name the file itself' : `cannot read it (${code ?? String(err)})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuse(file, 'is not a regular file');
    const uid = process.geteuid?.() ?? 0;
    if (st.uid !== 0 && st.uid !== uid) throw refuse(file, `is owned by uid ${st.uid}, not by root or uid ${uid}`);
    if (st.mode & 0o022) throw refuse(file, `is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`);
    if (st.size > PAGE_MAX_BYTES) throw refuse(file, `is ${st.size} bytes; at most ${PAGE_MAX_BYTES}`);
    const buf = Buffer.alloc(PAGE_MAX_BYTES + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > PAGE_MAX_BYTES) throw refuse(file, `is over ${PAGE_MAX_BYTES} bytes`);
    return checkPage(file, buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** The page's text, or a refusal: UTF-8, not empty, no control characters but tab, CR, LF. */
export function checkPage(file: string, bytes: Buffer): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (text.includes('\uFFFD')) throw refuse(file, 'is not UTF-8 text');
  if (text.trim() === '') throw refuse(file, 'is empty');
  // eslint-disable-next-line no-control-regex
  const bad = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/.exec(text);
  if (bad) throw refuse(file, `has a control character (U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')})`);
  if (pageString('nginx', text).length > NGINX_TOKEN_MAX) throw refuse(file, `does not fit one nginx config string (${NGINX_TOKEN_MAX} bytes once quoted)`);
  return text;
}

const ESCAPES: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * The page as one double-quoted config string, read back byte for byte by the proxy: HAProxy
 * expands `$VAR` and strips `#` comments in double quotes unless escaped; nginx has no escape for
 * `$` (it starts a variable), so a `$` is printed as the variable `${elastic_dollar}`, which the
 * nginx template defines as "$" (geo values are literal text).
 */
export function pageString(proxy: ProxyKind, text: string): string {
  if (proxy === 'varnish') throw new Error('page: no 503 page file for Varnish');
  const extra: Record<string, string> = proxy === 'haproxy' ? { $: '\\$', '#': '\\#' } : { $: `\${${NGINX_DOLLAR}}` };
  return `"${text.replace(/[\\"\n\r\t$#]/g, (c) => ESCAPES[c] ?? extra[c] ?? c)}"`;
}
