import Handlebars from 'handlebars';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ExitCode, UserError } from '../errors.js';
import { endpoint } from '../model/backend.js';
import { isAddress, isIdent, isPort, isSafeText, printable } from '../model/validate.js';
import type { ProxyKind, TemplateData } from './model.js';
import { parseHostPattern, parsePathPrefix } from './routes.js';
import { checkPage, pageString } from './error-page.js';

/**
 * Template rendering with escaping we control. Handlebars runs with `noEscape: true` (its HTML
 * escaping means nothing in a proxy config); instead every value a template prints goes through
 * a helper that validates or quotes it for the target format:
 *
 *   {{ident x}}    an identifier (haproxy/nginx: [A-Za-z0-9_.-]; VCL: [A-Za-z_][A-Za-z0-9_]), else error
 *   {{addr x}}     an IP address; {{endpoint a p}} address:port ([v6]:port)
 *   {{port x}} {{int x}} {{ms x}}  numbers, checked; {{path x}} a URL path
 *   {{file x}}     an absolute file path of letters, digits and /._@+- (certificates, crt-list)
 *   {{quote x}}    a quoted string in the format's syntax; control characters are an error
 *   {{comment x}}  text reduced to a harmless character set, for comments
 *   {{host x}}     a host name (`api.example.com`), wildcard (`*.example.com`) or suffix (`.example.com`)
 *   {{prefix x}}   a route's path prefix (routes.ts); {{prefixRe x}} the same as `^/prefix`, dots bracketed
 *   {{page x}}     a 503 page body as one double-quoted string (error-page.ts), newlines escaped
 *
 * Data strings carry no control characters (model.ts), so even a bare {{x}} cannot start a new
 * line; the helpers make it correct as well as harmless.
 */
export class TemplateError extends UserError {}

/** A URL path safe to print unquoted in any of the formats. */
export function isUrlPath(s: string): boolean {
  return /^\/[A-Za-z0-9._~\/?=&%+-]{0,200}$/.test(s);
}

const VCL_IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function fail(what: string, value: unknown): never {
  throw new Error(`${what}: ${printable(String(value), 60)}`);
}

export function quoteFor(proxy: ProxyKind, value: unknown): string {
  const s = String(value ?? '');
  if (!isSafeText(s, 1024)) fail('quote: control characters are not allowed', s);
  switch (proxy) {
    case 'haproxy':
      // Single quotes are literal in HAProxy (no escapes, no $VAR); a quote closes, escapes, reopens.
      return `'${s.replace(/'/g, `'\\''`)}'`;
    case 'nginx':
      // Double quotes with \" and \\; "$" would start a variable and nginx has no escape for it.
      if (s.includes('$')) fail('quote: "$" cannot be quoted for nginx', s);
      return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    case 'varnish':
      // VCL long strings {"..."} take anything but their terminator.
      if (s.includes('"}')) fail('quote: "} cannot appear in a VCL string', s);
      return `{"${s}"}`;
  }
}

export function identFor(proxy: ProxyKind, value: unknown): string {
  const s = String(value ?? '');
  if (proxy === 'varnish') {
    const v = s.replace(/[.-]/g, '_');
    return VCL_IDENT.test(v) ? v : fail('ident: not a VCL identifier', s);
  }
  return isIdent(s) ? s : fail('ident: not an identifier', s);
}

/** Comments keep letters, digits and a few punctuation marks; everything else becomes "_". */
export function commentText(value: unknown): string {
  return String(value ?? '').replace(/[^A-Za-z0-9 _.,:/@+=()-]/g, '_').slice(0, 200);
}

function int(value: unknown, min: number, max: number, what: string): string {
  const n = Number(value);
  return Number.isInteger(n) && n >= min && n <= max ? String(n) : fail(what, value);
}

/** A host name, `*.` wildcard or `.` suffix as routes.ts accepts it (already normalized). */
function hostText(value: unknown): string {
  const s = String(value ?? '');
  const r = parseHostPattern(s.startsWith('.') ? s.slice(1) : s);
  return 'host' in r && r.host === (s.startsWith('.') ? s.slice(1) : s) ? s : fail('host: not a host name', s);
}

function prefixText(value: unknown): string {
  const s = String(value ?? '');
  const r = parsePathPrefix(s);
  return 'path' in r && r.path === s ? s : fail('prefix: not a path prefix', s);
}

export function createEngine(proxy: ProxyKind): typeof Handlebars {
  const hb = Handlebars.create();
  const h = (name: string, fn: (...args: unknown[]) => string) => hb.registerHelper(name, (...args: unknown[]) => fn(...args.slice(0, -1)));
  h('ident', (v) => identFor(proxy, v));
  h('addr', (v) => (isAddress(String(v)) ? String(v) : fail('addr: not an IP address', v)));
  h('endpoint', (a, p) => {
    if (!isAddress(String(a))) fail('endpoint: not an IP address', a);
    if (!isPort(Number(p))) fail('endpoint: not a port', p);
    return endpoint({ address: String(a), port: Number(p) });
  });
  h('port', (v) => int(v, 1, 65535, 'port: not a port'));
  h('int', (v) => int(v, 0, 2 ** 31 - 1, 'int: not a non-negative integer'));
  h('ms', (v) => `${int(v, 0, 2 ** 31 - 1, 'ms: not a duration')}ms`);
  h('path', (v) => (isUrlPath(String(v)) ? String(v) : fail('path: not a URL path', v)));
  h('file', (v) => (/^\/[A-Za-z0-9_.\/@+-]{1,200}$/.test(String(v)) && !String(v).includes('/../') ? String(v) : fail('file: not a plain absolute path', v)));
  h('quote', (v) => quoteFor(proxy, v));
  h('comment', (v) => commentText(v));
  h('host', (v) => hostText(v));
  h('prefix', (v) => prefixText(v));
  h('prefixRe', (v) => `^${prefixText(v).replace(/\./g, '[.]')}`);
  h('page', (v) => pageString(proxy, checkPage('page', Buffer.from(String(v ?? '')))));
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hb.registerPartial('forwarded', FORWARDED[proxy]);
  return hb;
}

/**
 * `{{> forwarded}}`: the lines that tell a backend the client's address (X-Forwarded-For, the
 * client appended) and scheme (X-Forwarded-Proto, a client's own replaced), one definition for the
 * built-in templates and custom ones (docs/render.md "Templates"). HAProxy: inside a frontend;
 * nginx: inside a location, next to proxy_pass; Varnish: in vcl_recv (varnishd itself appends the
 * client to X-Forwarded-For; TLS only in front of it, told by PROXY v2: `import proxy;`).
 */
const FORWARDED: Record<ProxyKind, string> = {
  haproxy: [
    '  # The backends see the client (appended to any X-Forwarded-For it sent) and the scheme it used',
    "  # (a client's own X-Forwarded-Proto is replaced: it could claim https over http). As nginx.",
    '  option forwardfor',
    '  http-request set-header X-Forwarded-Proto https if { ssl_fc }',
    '  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }',
    '',
  ].join('\n'),
  nginx: ['proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;', 'proxy_set_header X-Forwarded-Proto $scheme;', ''].join('\n'),
  varnish: [
    "  # The scheme the client used (a client's own X-Forwarded-Proto is replaced: it could claim",
    '  # https over http). varnishd terminates no TLS: https only from a TLS proxy in front speaking',
    '  # PROXY v2 with its SSL field (hitch --write-proxy-v2, HAProxy send-proxy-v2-ssl). As nginx.',
    '  if (proxy.is_ssl()) {',
    '    set req.http.X-Forwarded-Proto = "https";',
    '  } else {',
    '    set req.http.X-Forwarded-Proto = "http";',
    '  }',
    '',
  ].join('\n'),
};

const BUILTIN: Record<ProxyKind, string> = { haproxy: 'haproxy.cfg.hbs', nginx: 'nginx.conf.hbs', varnish: 'varnish.vcl.hbs' };

export function builtinTemplatePath(proxy: ProxyKind): string {
  // src/engine/frontends/ and dist/engine/frontends/ are both three levels below the package root.
  return fileURLToPath(new URL(`../../../templates/${BUILTIN[proxy]}`, import.meta.url));
}

export async function loadTemplate(proxy: ProxyKind, file?: string): Promise<{ source: string; file: string }> {
  const path = file ?? builtinTemplatePath(proxy);
  try {
    return { source: await readFile(path, 'utf8'), file: path };
  } catch (err) {
    throw new UserError(`cannot read template ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check --template', ExitCode.config);
  }
}

export type CompiledTemplate = (data: TemplateData) => string;

/** Compile once; rendering errors (helper refusals, syntax) name the template file and line. */
export function compileTemplate(proxy: ProxyKind, source: string, file: string): CompiledTemplate {
  const hb = createEngine(proxy);
  let tpl: HandlebarsTemplateDelegate;
  try {
    tpl = hb.compile(source, { noEscape: true, strict: true, knownHelpersOnly: false });
    tpl({ instance: 'x', proxy, services: [], routedBinds: [], hasHttp: false, hasTcp: false, paths: {} }); // surface syntax errors now
  } catch (err) {
    if (!/is not defined in|not defined in \[object/.test(String((err as Error).message))) throw templateError(err, file);
  }
  return (data) => {
    try {
      return tpl(data);
    } catch (err) {
      throw templateError(err, file);
    }
  };
}

function templateError(err: unknown, file: string): TemplateError {
  const msg = (err as Error).message ?? String(err);
  const line = /line (\d+)/.exec(msg)?.[1] ?? (err as { lineNumber?: number }).lineNumber;
  const first = printable(msg.split('\n')[0] ?? msg, 200);
  return new TemplateError(`${file}${line ? `:${line}` : ''}: template error: ${first}`, 'fix the template; see docs/render.md "Templates" for the data model and helpers', ExitCode.config);
}
