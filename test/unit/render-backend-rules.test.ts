import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { routedRules } from '../../src/engine/frontends/backend-rules.js';
import { buildTemplateData, type ServiceSpec } from '../../src/engine/frontends/model.js';
import { builtinTemplatePath, compileTemplate } from '../../src/engine/frontends/template.js';
import { routedBinds } from '../../src/engine/frontends/routing.js';
import { attachTls } from '../../src/engine/frontends/tls/tls-data.js';

// HAProxy's routed services do their redirect, HSTS and prefix strip in their own backend
// (templates/haproxy.cfg.hbs): which rules each backend gets.
describe('routedRules: a routed service backend\'s own rules', () => {
  const bind = { address: '127.0.0.1', port: 80 };
  const set = { entries: [{ key: 'default', source: '/s/d.pem', hosts: [], copy: '/run/d.pem', info: { subject: '', names: [], notAfter: '', serial: '', digest: 'd', pem: '' } }], crtList: '/run/crt-list', crtListText: 'x', changed: [], listChanged: false };
  const specs = [
    { name: 'api', bind, mode: 'http', routes: { hosts: ['api.example.com', '*.example.org'], paths: ['/v1', '/v1/admin'], stripPrefix: true }, tls: { redirect: true, hstsMaxAge: 600 } },
    { name: 'site', bind, mode: 'http', routes: { hosts: ['api.example.com'], paths: [], stripPrefix: false } },
    { name: 'web', bind, mode: 'http', isDefaultService: true, tls: { redirect: true, hstsMaxAge: 0 } },
  ];
  const ids = (b: ReturnType<typeof routedBinds>[number], service: string) => b.allHosts.flatMap((h) => h.routes).filter((r) => r.service === service).map((r) => ({ num: r.num, path: r.path }));
  it.each([
    { what: 'with a TLS bind on 8443', tls: { bind: { address: '127.0.0.1', port: 8443 } }, port: 8443, hsts: 'max-age=600' },
    { what: 'without TLS', tls: undefined, port: null, hsts: null },
  ])('$what', ({ tls, port, hsts }) => {
    const [b] = attachTls(routedBinds(specs, new Set()), specs, tls ? set : undefined, tls, false);
    const rules = routedRules([b!]);
    // Every route of api strips its own prefix, the longest first within a host; the default's own `/` route never strips.
    expect(ids(b!, 'api').map((r) => r.path)).toEqual(['/v1/admin', '/v1', '/v1/admin', '/v1']);
    expect(rules).toEqual({
      api: { redirectPort: port, hsts, strips: ids(b!, 'api') },
      site: { redirectPort: null, hsts: null, strips: [] },
      web: { redirectPort: port, hsts: null, strips: [] },
    });
    expect(b!.hasStrip).toBe(true);
  });
  it('a bind with no strip_prefix route records no route', () => {
    const [b] = routedBinds(specs.slice(1), new Set());
    expect(b!.hasStrip).toBe(false);
  });
});

// The per-request rules of a routed HAProxy frontend (docs/BENCHMARKS.md: a route variable set
// and read by every rule cost ~5% of HAProxy's work per keep-alive request).
describe('HAProxy routed frontend: what every request runs', () => {
  const bind = { address: '127.0.0.1', port: 18480 };
  const site = (name: string, hosts: string[], paths: string[] = [], stripPrefix = false): ServiceSpec => ({ name, bind, mode: 'http', balance: 'roundrobin', check: { kind: 'none', path: '/', intervalMs: 2000 }, minSlots: 1, routes: { hosts, paths, stripPrefix } });
  const frontend = (specs: ServiceSpec[]) => {
    const file = builtinTemplatePath('haproxy');
    const text = compileTemplate('haproxy', readFileSync(file, 'utf8'), file)(buildTemplateData({ instance: 't', proxy: 'haproxy', specs, backends: {}, paths: { statsSocket: '/run/t.sock' } }).data);
    return text.slice(text.indexOf('frontend fe_bind_18480'), text.indexOf('\nbackend ')).split('\n').filter((l) => /^\s+(http-request|use_backend|default_backend)/.test(l)).map((l) => l.trim());
  };
  it('host-only sites: one variable (the host), then the first matching use_backend', () => {
    expect(frontend([site('api', ['api.example.com']), site('local', ['localhost']), site('wild', ['*.example.com'])]).filter((l) => !l.includes('X-Forwarded-Proto'))).toEqual([
      'http-request set-var(txn.host) req.hdr(host),field(1,:),lower',
      'use_backend be_api if h1',
      'use_backend be_local if h2',
      'use_backend be_wild if h3',
      'default_backend nf_bind_18480',
    ]);
  });
  it('a host whose paths do not match goes to the 404 backend, not to a less specific host', () => {
    expect(frontend([site('api', ['api.example.com'], ['/v1']), site('wild', ['*.example.com'])]).filter((l) => l.startsWith('use_backend'))).toEqual(['use_backend be_api if h1 path_r1', 'use_backend nf_bind_18480 if h1', 'use_backend be_wild if h2']);
  });
  it('strip_prefix: the route taken is recorded for the backend, in the same precedence', () => {
    const lines = frontend([site('api', ['api.example.com'], ['/v1'], true), site('wild', ['*.example.com'])]);
    expect(lines.filter((l) => l.includes('txn.route'))).toEqual(['http-request set-var(txn.route) int(1) if !routed h1 path_r1', 'http-request set-var(txn.route) int(0) if !routed h1', 'http-request set-var(txn.route) int(2) if !routed h2']);
  });
});
