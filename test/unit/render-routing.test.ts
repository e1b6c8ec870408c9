import { describe, expect, it } from 'vitest';
import { buildTemplateData, type ServiceSpec } from '../../src/engine/frontends/model.js';
import { parseServiceRoutes, routedBinds, routingProblem } from '../../src/engine/frontends/routing.js';
import { parseServicesFile } from '../../src/engine/frontends/services.js';
import { builtinTemplatePath, compileTemplate } from '../../src/engine/frontends/template.js';
import { ConfigError, parseConfig } from '../../src/engine/run/config.js';
import { readFileSync } from 'node:fs';

const base = { bind: { address: '127.0.0.1', port: 8080 }, mode: 'http' as const, balance: 'roundrobin' as const, check: { kind: 'tcp' as const, path: '/', intervalMs: 1000 }, minSlots: 2 };
const spec = (name: string, hosts: string[] = [], paths: string[] = [], extra: Partial<ServiceSpec> = {}): ServiceSpec => ({ ...base, name, ...(hosts.length || paths.length ? { routes: parseServiceRoutes(hosts, paths) } : {}), ...extra });

describe('routingProblem: what cannot share a bind', () => {
  it.each([
    ['one plain service', [spec('a')], null],
    ['two services with routes', [spec('a', ['a.example.com']), spec('b', [], ['/b'])], null],
    ['a default with no routes', [spec('a', ['a.example.com']), spec('b', [], [], { isDefaultService: true })], null],
    ['two plain services on one bind', [spec('a'), spec('b')], /service a shares bind 127.0.0.1:8080 but declares no hosts or paths/],
    ['a tcp service with routes', [spec('a', ['a.example.com'], [], { mode: 'tcp' })], /a tcp service cannot share bind/],
    ['two defaults', [spec('a', [], [], { isDefaultService: true }), spec('b', [], [], { isDefaultService: true })], /two default services: a and b/],
    ['one host and path claimed twice', [spec('a', ['x.example.com'], ['/api']), spec('b', ['X.example.com.'], ['/api/'])], /x\.example\.com\/api is claimed by two services: a and b/],
    ['other binds are independent', [spec('a'), spec('b', [], [], { bind: { address: '127.0.0.1', port: 8081 } })], null],
  ] as const)('%s', (_what, specs, want) => {
    const p = routingProblem(specs as readonly ServiceSpec[]);
    if (want === null) expect(p).toBeNull();
    else expect(p).toMatch(want);
  });
});

describe('routedBinds: the data the templates print', () => {
  it('hosts most specific first, path-only routes as the any-host group, the default as a / route', () => {
    const [b] = routedBinds([spec('wild', ['*.example.com']), spec('assets', [], ['/static']), spec('api', ['api.example.com'], ['/', '/v2']), spec('web', [], [], { isDefaultService: true })], new Set(['assets']));
    expect(b!.name).toBe('bind_8080');
    expect(b!.allHosts.map((h) => [h.host, h.kind, h.match, h.routes.map((r) => `${r.service}${r.path}`)])).toEqual([
      ['api.example.com', 'exact', 'api.example.com', ['api/v2', 'api/']],
      ['*.example.com', 'wildcard', '.example.com', ['wild/']],
      ['*', 'any', '*', ['assets/static']],
    ]);
    expect(b!.anyHost?.routes[0]).toMatchObject({ service: 'assets', empty: true, root: false });
    expect(b!.defaultRoute).toMatchObject({ service: 'web', path: '/', root: true, empty: false });
  });

  it('plain services keep their own frontend; routed ones do not', () => {
    const { data } = buildTemplateData({ instance: 't', proxy: 'haproxy', specs: [spec('a', ['a.example.com']), spec('b', [], [], { bind: { address: '127.0.0.1', port: 8081 } })], backends: {} });
    expect(data.services.map((s) => [s.name, s.routed])).toEqual([['a', true], ['b', false]]);
  });
});

describe('template helpers refuse a route that did not come through routes.ts', () => {
  it.each(['haproxy', 'nginx'] as const)('%s', (proxy) => {
    const file = builtinTemplatePath(proxy);
    const tpl = compileTemplate(proxy, readFileSync(file, 'utf8'), file);
    const paths = { statsSocket: '/run/h.sock', pidFile: '/run/n.pid', errorLog: '/run/e.log', closingFlag: '/run/.c' };
    const { data } = buildTemplateData({ instance: 't', proxy, specs: [spec('a', ['a.example.com'], ['/x'])], backends: {}, paths });
    expect(tpl(data)).toMatch(/a\.example\.com/);
    const forged = { ...data, routedBinds: data.routedBinds.map((b) => ({ ...b, allHosts: b.allHosts.map((h) => ({ ...h, host: 'a.com;\n bind :81', match: 'a.com;', routes: h.routes.map((r) => ({ ...r, path: '/x;{{' })) })), hosts: b.hosts.map((h) => ({ ...h, host: 'a.com; listen 81', routes: h.routes.map((r) => ({ ...r, path: '/x $host' })) })) })) };
    expect(() => tpl(forged)).toThrow(/template error: (host: not a host name|prefix: not a path prefix)/);
  });
});

describe('render --config: hosts, paths, strip_prefix, default_service', () => {
  it('reads routes and marks the default service', () => {
    const services = parseServicesFile('default_service: web\nservices:\n  - { name: api, bind: 8080, hosts: [API.example.com], paths: [/v1/], strip_prefix: true, select: { backend: ["127.0.0.1:1"] } }\n  - { name: web, bind: 8080, select: { backend: ["127.0.0.1:2"] } }\n', 's.yaml');
    expect(services.map((s) => s.spec.routes ?? null)).toEqual([{ hosts: ['api.example.com'], paths: ['/v1'], stripPrefix: true }, null]);
    expect(services.map((s) => Boolean(s.spec.isDefaultService))).toEqual([false, true]);
  });

  it.each([
    ['strip_prefix: yes', 'services:\n  - { name: api, bind: 8080, paths: [/v1], strip_prefix: "yes", select: { backend: ["127.0.0.1:1"] } }\n', /strip_prefix must be true or false/],
    ['strip_prefix without paths', 'services:\n  - { name: api, bind: 8080, hosts: [a.example.com], strip_prefix: true, select: { backend: ["127.0.0.1:1"] } }\n', /strip_prefix without paths/],
    ['a hostile host', 'services:\n  - { name: api, bind: 8080, hosts: ["{{x}}"], select: { backend: ["127.0.0.1:1"] } }\n', /host "\{\{x\}\}": .*not a host name label/],
  ])('%s is refused', (_what, text, want) => {
    expect(() => parseServicesFile(text, 's.yaml')).toThrow(want);
  });
});

describe('elastic.yaml: routes on a shared HAProxy/nginx bind', () => {
  const yaml = (extra: string) => `version: 1\nsources:\n  s: { static: { backends: ["198.18.0.1:80"] } }\nservices:\n${extra}`;
  const problems = (text: string) => {
    try {
      parseConfig(text, 'elastic.yaml', { env: {} });
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return [...err.problems];
      throw err;
    }
  };

  it('two services share :8080 by host; default_service takes the rest', () => {
    const c = parseConfig(yaml('  - { name: api, sources: [s], haproxy: { port: 8080, hosts: [api.example.com], paths: [/v1], strip_prefix: true } }\n  - { name: web, sources: [s], haproxy: { port: 8080 } }\ndefault_service: web\n'), 'elastic.yaml', { env: {} });
    expect(c.services[0]!.haproxy).toMatchObject({ port: 8080, routes: { hosts: ['api.example.com'], paths: ['/v1'], stripPrefix: true } });
    expect(c.services[1]!.haproxy).toMatchObject({ port: 8080, isDefaultService: true });
  });

  it.each([
    ['a hostile host', '  - { name: api, sources: [s], nginx: { port: 8080, hosts: ["a.com;"] } }\n', /elastic.yaml:\d+: services\[0\]\.nginx\.hosts\[0\]: .*not a host name label/],
    ['a shared bind without routes', '  - { name: api, sources: [s], haproxy: { port: 8080, hosts: [a.example.com] } }\n  - { name: web, sources: [s], haproxy: { port: 8080 } }\n', /is already used by|declares no hosts or paths/],
    ['an unknown default_service', '  - { name: api, sources: [s], haproxy: { port: 8080, hosts: [a.example.com] } }\ndefault_service: nope\n', /default_service: no service named "nope"/],
    ['one bind for two proxies', '  - { name: api, sources: [s], haproxy: { port: 8080, hosts: [a.example.com] } }\n  - { name: web, sources: [s], nginx: { port: 8080, hosts: [b.example.com] } }\n', /127\.0\.0\.1:8080 is already used by/],
  ])('%s is refused', (_what, text, want) => {
    expect(problems(yaml(text)).join('\n')).toMatch(want);
  });
});
