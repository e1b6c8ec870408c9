import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { parseContainer } from '../../src/engine/discovery/docker/parse.js';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';
import { labelRoutes, routeServiceName } from '../../src/engine/frontends/label-routes.js';
import type { Backend } from '../../src/engine/model/backend.js';

const base = { bind: { address: '127.0.0.1', port: 80 }, mode: 'http' as const, balance: 'roundrobin' as const, check: { kind: 'tcp' as const, path: '/', intervalMs: 2000 }, minSlots: 8 };
const c = (n: number, labels: Record<string, string>): Backend => ({ ...staticBackend(`198.18.51.${n}`, 80, 'x'), id: `docker:c${n}`, labels });

describe('labelRoutes: containers -> services by host and path', () => {
  it('one service per host and path; a container with two hosts serves both', () => {
    const r = labelRoutes([c(1, { 'elastic.http.host': 'API.example.com' }), c(2, { 'elastic.http.host': 'api.example.com, *.example.com', 'elastic.http.path': '/v2' }), c(3, { 'elastic.http.host': 'api.example.com' })], base);
    expect(r.specs.map((s) => [s.routes?.hosts, s.routes?.paths])).toEqual(
      [[['api.example.com'], ['/']], [['api.example.com'], ['/v2']], [['*.example.com'], ['/v2']]].sort((a, b) => (routeServiceName(a[0]![0]!, a[1]![0]!) < routeServiceName(b[0]![0]!, b[1]![0]!) ? -1 : 1)),
    );
    expect(r.backends[routeServiceName('api.example.com', '/')]!.map((b) => b.id)).toEqual(['docker:c1', 'docker:c3']);
    expect(r.backends[routeServiceName('*.example.com', '/v2')]!.map((b) => [b.id, b.service])).toEqual([['docker:c2', routeServiceName('*.example.com', '/v2')]]);
    expect(r.skipped).toEqual([]);
  });

  it('names are identifiers, readable, and never shared by two routes', () => {
    expect(routeServiceName('*.example.com', '/v2')).toMatch(/^wild\.example\.com_v2-[0-9a-f]{8}$/);
    expect(routeServiceName('wild.example.com', '/v2')).not.toBe(routeServiceName('*.example.com', '/v2'));
  });

  it.each([
    ['a.com;', { 'elastic.http.host': 'a.com;' }, /elastic\.http\.host: "a\.com;": .*not a host name label/],
    ['{{', { 'elastic.http.host': '{{x}}' }, /not a host name label/],
    ['spaces', { 'elastic.http.host': 'a b.com' }, /not a host name label/],
    ['$host', { 'elastic.http.host': '$host' }, /not a host name label/],
    ['300 characters', { 'elastic.http.host': `${'a'.repeat(300)}.com` }, /longer than 253/],
    ['one bad host of two', { 'elastic.http.host': 'ok.example.com,a;b' }, /not a host name label/],
    ['an empty host', { 'elastic.http.host': '' }, /empty host/],
    ['a hostile path', { 'elastic.http.host': 'ok.example.com', 'elastic.http.path': '/a;rewrite' }, /elastic\.http\.path: .*only letters/],
    ['a tls value', { 'elastic.http.host': 'ok.example.com', 'elastic.http.tls': 'yes' }, /elastic\.http\.tls: "yes" is not true, redirect or false/],
  ])('%s: the whole container is skipped with a reason', (_what, labels, reason) => {
    const r = labelRoutes([c(1, labels), c(2, { 'elastic.http.host': 'fine.example.com' })], base);
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0]!.reason).toMatch(reason);
    expect(r.specs.map((s) => s.routes?.hosts[0])).toEqual(['fine.example.com']);
  });

  it('tls=true is served over http and reported', () => {
    expect(labelRoutes([c(1, { 'elastic.http.host': 'a.example.com', 'elastic.http.tls': 'redirect' })], base).tlsIgnored).toEqual(['docker:c1']);
  });
});

describe('docker discovery for labels: labelKeys and portLabel', () => {
  const info = (labels: Record<string, string>, ports = [80, 8080]): Docker.ContainerInfo =>
    ({ Id: 'abcdef0123456789', Names: ['/w'], Image: 'i', ImageID: 'sha256:1', Created: 1, Ports: ports.map((p) => ({ PrivatePort: p, Type: 'tcp' })), Labels: labels, State: 'running', Status: 'Up', NetworkSettings: { Networks: { n: { IPAddress: '198.18.51.2' } } } }) as unknown as Docker.ContainerInfo;
  const selector = { labels: [], includeUnhealthy: false, service: 's', labelKeys: ['elastic.http.host'], portLabel: 'elastic.http.port' };

  it.each([
    ['no host label: not selected', {}, null],
    ['the port label picks one of several ports', { 'elastic.http.host': 'a.example.com', 'elastic.http.port': '8080' }, { ok: true, port: 8080 }],
    ['several ports and no port label: skipped', { 'elastic.http.host': 'a.example.com' }, { ok: false, reason: /exposes several ports/ }],
    ['a port label that is not a port', { 'elastic.http.host': 'a.example.com', 'elastic.http.port': '80;' }, { ok: false, reason: /label elastic\.http\.port="80;" is not a port/ }],
    ['a port label out of range', { 'elastic.http.host': 'a.example.com', 'elastic.http.port': '70000' }, { ok: false, reason: /is not a port/ }],
    ['a host label with a newline', { 'elastic.http.host': 'a.example.com\nserver x' }, { ok: false, reason: /label elastic\.http\.host is not printable text/ }],
  ] as const)('%s', (_what, labels, want) => {
    const r = parseContainer(info(labels as Record<string, string>), selector, null);
    if (want === null) return expect(r).toBeNull();
    expect(r?.ok).toBe(want.ok);
    if (r?.ok) expect(r.backend.port).toBe((want as { port: number }).port);
    else expect(r?.reason).toMatch((want as { reason: RegExp }).reason);
  });
});
