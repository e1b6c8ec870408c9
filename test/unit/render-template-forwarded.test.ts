import { describe, expect, it } from 'vitest';
import { compileTemplate } from '../../src/engine/frontends/template.js';
import type { TemplateData } from '../../src/engine/frontends/model.js';

// A custom --template gets the X-Forwarded lines of the built-in ones as `{{> forwarded}}`
// (docs/render.md "Templates"): before, they lived inline in the built-in templates only.
const data = { instance: 'x', services: [], routedBinds: [], hasHttp: true, hasTcp: false, paths: {}, pages503: {} } as unknown as TemplateData;

describe('{{> forwarded}} in a custom template', () => {
  it.each([
    ['haproxy', 'frontend fe\n{{> forwarded}}  default_backend b\n', ['  option forwardfor', '  http-request set-header X-Forwarded-Proto https if { ssl_fc }', '  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }']],
    ['nginx', 'location / {\n  {{> forwarded}}\n  proxy_pass http://u;\n}\n', ['  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;', '  proxy_set_header X-Forwarded-Proto $scheme;']],
    ['varnish', 'sub vcl_recv {\n{{> forwarded}}\n}\n', ['  if (proxy.is_ssl()) {', '    set req.http.X-Forwarded-Proto = "https";', '    set req.http.X-Forwarded-Proto = "http";']],
  ] as const)('%s', (proxy, source, lines) => {
    const out = compileTemplate(proxy, source, 'custom.hbs')({ ...data, proxy });
    for (const l of lines) expect(out.split('\n')).toContain(l);
  });
});
