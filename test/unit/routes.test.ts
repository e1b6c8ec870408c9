import { describe, expect, it } from 'vitest';
import { matchRoute, parseHostPattern, parsePathPrefix, pathMatches, requestHost, routeTable, type Route } from '../../src/engine/frontends/routes.js';

const r = (service: string, host: string, path = '/'): Route => ({ service, host, path, stripPrefix: false });

describe('parseHostPattern: hosts from configs and labels (untrusted)', () => {
  it.each([
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM.', 'api.example.com'],
    ['*.example.com', '*.example.com'],
    ['localhost', 'localhost'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
  ])('%j -> %j', (text, host) => expect(parseHostPattern(text)).toEqual({ host }));

  it.each([
    ['', /empty/],
    ['a.com;', /not a host name label/],
    ['{{host}}', /not a host name label/],
    ['a.com\nserver evil', /not a host name label/],
    ['a b.com', /not a host name label/],
    ['$host', /not a host name label/],
    ['-a.com', /not a host name label/],
    ['*.com', /at least two labels/],
    ['a.*.com', /not a host name label/],
    [`${'a'.repeat(64)}.com`, /not a host name label/],
    [`${'abcdefghi.'.repeat(30)}com`, /longer than 253/],
  ])('%j is refused (%s)', (text, reason) => expect((parseHostPattern(text) as { error: string }).error).toMatch(reason));
});

describe('parsePathPrefix', () => {
  it.each([
    ['/', '/'],
    ['/api', '/api'],
    ['/api/', '/api'],
    ['/static/v1.2_x~y-z', '/static/v1.2_x~y-z'],
  ])('%j -> %j', (text, path) => expect(parsePathPrefix(text)).toEqual({ path }));

  it.each([
    ['api', /starts with/],
    ['/a b', /only letters/],
    ['/a;rewrite', /only letters/],
    ['/a$uri', /only letters/],
    ['/{{x}}', /only letters/],
    ['/a\n', /only letters/],
    ['/a//b', /"\/\/"/],
    ['/a/../b', /"\/\.\.\/"/],
    [`/${'a'.repeat(300)}`, /longer than 200/],
  ])('%j is refused', (text, reason) => expect((parsePathPrefix(text) as { error: string }).error).toMatch(reason));
});

describe('requestHost and pathMatches', () => {
  it.each([
    ['API.example.com:8443', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['[::1]:80', '[::1]'],
  ])('Host %j is %j', (h, want) => expect(requestHost(h)).toBe(want));

  it.each([
    ['/', '/anything', true],
    ['/api', '/api', true],
    ['/api', '/api/v1', true],
    ['/api', '/apix', false],
    ['/api/v1', '/api', false],
  ])('%j matches %j: %s', (prefix, path, want) => expect(pathMatches(prefix, path)).toBe(want));
});

describe('matchRoute: the precedence table of docs/render.md', () => {
  const table = routeTable([
    r('api', 'api.example.com'),
    r('api-v2', 'api.example.com', '/v2'),
    r('wild', '*.example.com'),
    r('wild-static', '*.example.com', '/static'),
    r('deep', '*.eu.example.com'),
    r('long-path-wild', '*.example.com', '/v2/admin'),
    r('shop', 'shop.example.com', '/cart'),
  ]);
  it.each([
    ['api.example.com', '/', 'api', 'exact host, root'],
    ['API.example.com:443', '/v2/users', 'api-v2', 'exact host, longest prefix; case and port ignored'],
    ['api.example.com', '/v2/admin/x', 'api-v2', 'an exact host is never overridden by a wildcard route, however long its path'],
    ['www.example.com', '/static/a.css', 'wild-static', 'wildcard, longest prefix'],
    ['www.example.com', '/v2/admin', 'long-path-wild', 'wildcard, longest prefix'],
    ['x.eu.example.com', '/static', 'deep', 'the longer wildcard suffix wins'],
    ['example.com', '/', undefined, 'a wildcard does not match its bare domain'],
    ['shop.example.com', '/cart/1', 'shop', 'exact host'],
    ['shop.example.com', '/other', undefined, 'a host that matched, no path matched: default or 404, not the wildcard'],
    ['other.org', '/', undefined, 'no host: default or 404'],
    ['api.example.com', '/v2?x=1', 'api-v2', 'the query is not part of the path'],
  ] as [string, string, string | undefined, string][])('%s %s -> %s (%s)', (host, path, service) => expect(matchRoute(table, host, path)?.service).toBe(service));

  it('two services claiming the same host and path are refused', () => {
    expect(() => routeTable([r('a', 'x.example.com', '/api'), r('b', 'x.example.com', '/api')])).toThrow(/claimed by two services: a and b/);
  });

  it('orders hosts most specific first and paths longest first (the order a rule-by-rule config uses)', () => {
    expect(table.map((g) => g.host)).toEqual(['shop.example.com', 'api.example.com', '*.eu.example.com', '*.example.com']);
    expect(table.find((g) => g.host === '*.example.com')!.routes.map((x) => x.path)).toEqual(['/v2/admin', '/static', '/']);
  });
});
