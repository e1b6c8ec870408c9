import { describe, expect, it } from 'vitest';
import { routedRules } from '../../src/engine/frontends/backend-rules.js';
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
  const ids = (b: ReturnType<typeof routedBinds>[number], service: string) => b.allHosts.flatMap((h) => h.routes).filter((r) => r.service === service).map((r) => ({ id: r.id, path: r.path }));
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
