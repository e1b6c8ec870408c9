import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildTemplateData, type ProxyKind, type ServiceSpec } from '../../src/engine/frontends/model.js';
import { builtinTemplatePath, commentText, compileTemplate, quoteFor } from '../../src/engine/frontends/template.js';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';
import type { Backend } from '../../src/engine/model/backend.js';

const fixtures = fileURLToPath(new URL('../fixtures/render/', import.meta.url));
const specs: ServiceSpec[] = [
  { name: 'web', bind: { address: '127.0.0.1', port: 18400 }, mode: 'http', balance: 'roundrobin', check: { kind: 'http', path: '/id', intervalMs: 1000 }, minSlots: 4 },
  { name: 'db.tcp', bind: { address: '127.0.0.1', port: 18401 }, mode: 'tcp', balance: 'leastconn', check: { kind: 'tcp', path: '/', intervalMs: 2000 }, minSlots: 2 },
];
const paths = { statsSocket: '/run/elastic/render-t/haproxy.sock', pidFile: '/run/elastic/render-t/nginx.pid', errorLog: '/run/elastic/render-t/nginx-error.log', closingFlag: '/var/lib/elastic/render-t/.nginx.conf.closing' };
const backend = (addr: string, port: number, service: string, name: string, labels: Record<string, string> = {}): Backend => ({ ...staticBackend(addr, port, service), name, labels });
const sample = {
  web: [backend('198.18.0.10', 80, 'web', 'web-1', { 'elastic.weight': '3' }), backend('198.18.0.11', 80, 'web', 'web-2'), backend('2001:db8::5', 8080, 'web', 'v6')],
  'db.tcp': [backend('198.18.0.20', 5432, 'db.tcp', 'db-1')],
};

function render(proxy: ProxyKind, backends: Record<string, Backend[]>, source?: string): string {
  const file = builtinTemplatePath(proxy);
  const tpl = compileTemplate(proxy, source ?? readFileSync(file, 'utf8'), file);
  return tpl(buildTemplateData({ instance: 't', proxy, specs, backends, paths }).data);
}

describe('built-in templates (golden text)', () => {
  it.each(['haproxy', 'nginx', 'varnish'] as const)('%s', (proxy) => {
    const text = render(proxy, sample);
    const golden = `${fixtures}${proxy}.golden`;
    if (process.env.UPDATE_GOLDEN || !existsSync(golden)) writeFileSync(golden, text);
    expect(text).toBe(readFileSync(golden, 'utf8'));
  });
});

/** Strip comments so only directives remain. */
const directives = (text: string) =>
  text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trimEnd())
    .join('\n');

// Hostile text: newlines, quotes, braces, semicolons, NUL, unicode line separators, VCL/nginx syntax.
const hostile = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('x\nserver evil 1.2.3.4:80', 'a"; } server { listen 80; #', "'\\' \u2028 bind :80", '"} ; sub vcl_recv { return (synth(200)); } {"', '\r\n\tfrontend x', '${HOME} $host'),
);

describe('untrusted strings cannot add config lines', () => {
  it.each(['haproxy', 'nginx', 'varnish'] as const)('%s: hostile names and labels change nothing but comments', (proxy) => {
    const benign = directives(render(proxy, { web: [backend('198.18.0.10', 80, 'web', 'x')], 'db.tcp': [] }));
    fc.assert(
      fc.property(hostile, hostile, hostile, (name, key, value) => {
        const text = render(proxy, { web: [backend('198.18.0.10', 80, 'web', name, { [key]: value })], 'db.tcp': [] });
        expect(directives(text)).toBe(benign);
      }),
      { numRuns: 300 },
    );
  });

  it('comment text is a harmless character set', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(commentText(s)).toMatch(/^[A-Za-z0-9 _.,:/@+=()-]*$/);
      }),
    );
  });

  // Parse the quoted token back the way each proxy would, and check it is one token equal to the input.
  const unquote: Record<ProxyKind, (t: string) => string | null> = {
    haproxy: (t) => {
      let out = '';
      let i = 0;
      while (i < t.length) {
        if (t[i] === "'") {
          const end = t.indexOf("'", i + 1);
          if (end < 0) return null;
          out += t.slice(i + 1, end);
          i = end + 1;
        } else if (t[i] === '\\' && i + 1 < t.length) {
          out += t[i + 1];
          i += 2;
        } else return null; // anything outside quotes would be a new word
      }
      return out;
    },
    nginx: (t) => (/^"(?:[^"\\]|\\.)*"$/s.test(t) ? t.slice(1, -1).replace(/\\(.)/g, '$1') : null),
    varnish: (t) => (t.startsWith('{"') && t.endsWith('"}') && !t.slice(2, -2).includes('"}') ? t.slice(2, -2) : null),
  };
  it.each(['haproxy', 'nginx', 'varnish'] as const)('%s: quote gives one token that reads back as the input, or refuses', (proxy) => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
        let q: string;
        try {
          q = quoteFor(proxy, s);
        } catch {
          return; // refused: control characters, or a character the format cannot carry
        }
        expect(q).not.toMatch(/[\n\r]/);
        expect(unquote[proxy](q)).toBe(s);
      }),
      { numRuns: 500 },
    );
  });

  it('a custom template printing a label through quote stays one directive', () => {
    const source = `{{#each services}}{{#each backends}}http-request set-header X-Name {{quote displayName}}\n{{/each}}{{/each}}`;
    fc.assert(
      fc.property(hostile, (name) => {
        let text: string;
        try {
          text = render('haproxy', { web: [backend('198.18.0.10', 80, 'web', name)], 'db.tcp': [] }, source);
        } catch {
          return;
        }
        expect(text.split('\n').filter(Boolean)).toHaveLength(1);
      }),
      { numRuns: 300 },
    );
  });
});

describe('template errors', () => {
  it('names the template file and line', () => {
    expect(() => render('haproxy', sample, 'global\n  x {{ident "bad name"}}\n')).toThrow(/template error: ident: not an identifier/);
    expect(() => compileTemplate('haproxy', 'a\nb {{#each services}}\nc {{/if}}\n', 't.hbs')).toThrow(/t\.hbs:\d+: template error: /);
  });
  it('refuses an unknown field instead of printing nothing (strict mode)', () => {
    expect(() => render('haproxy', sample, '{{#each services}}{{nosuchfield}}{{/each}}')).toThrow(/template error/);
  });
});
