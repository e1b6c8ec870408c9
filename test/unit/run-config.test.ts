import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/engine/run/config.js';
import { publishedSchema } from '../../src/engine/run/schema.js';

const ROOT = join(import.meta.dirname, '..', '..');
const parse = (text: string, env: NodeJS.ProcessEnv = {}) => parseConfig(text, 'elastic.yaml', { env });
const problems = (text: string, env: NodeJS.ProcessEnv = {}): string[] => {
  try {
    parse(text, env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
};

const BASE = `version: 1
sources:
  web:
    docker: { image: elastic-test/web:1, port: 80 }
services:
  - name: web
    sources: [web]
    haproxy: { port: 18801 }
`;

describe('elastic.yaml: valid configs', () => {
  it('fills defaults and builds discover options like the flags do', () => {
    const c = parse(BASE);
    expect(c.name).toBe('main');
    expect(c.services[0]).toMatchObject({ name: 'web', sources: ['web'], guard: { minBackends: 1, maxChangePct: 50 }, haproxy: { address: '127.0.0.1', port: 18801, mode: 'http', balance: 'roundrobin', lbCheck: 'tcp', slots: 8 } });
    expect(c.sources.web!.discover.docker?.selector).toMatchObject({ image: 'elastic-test/web:1', port: 80, service: 'web', labels: [] });
    expect(c.proxies.haproxy.instance).toBe('run-main');
    expect(c.sync).toEqual({ minIntervalMs: 200, resyncMs: 60_000 });
    expect(c.hash).toMatch(/^[0-9a-f]{12}$/);
  });

  it('reads every section', () => {
    const c = parse(`version: 1
name: lb1
sources:
  web: { docker: { label: [app=web], network: front } }
  cloud: { ec2: { tags: [Role=web], port: 8080, region: eu-west-1, poll_interval: 30 } }
  legacy: { static: { backends: ["198.18.0.10:80", "198.18.0.11:80"] } }
services:
  - name: web
    sources: [web, legacy]
    health: { check: "http:/id", interval_ms: 500, rise: 1, fall: 2 }
    guardrails: { min_backends: 0, max_change: 100 }
    haproxy: { port: 18801, mode: tcp, balance: leastconn, slots: 16 }
    nginx: { port: 18802 }
    varnish: { port: 18803 }
    map_image: { port: 18804, dataplane: nft }
  - name: api
    sources: [cloud]
    edge: { port: 18805, token_file: /etc/elastic/token, max_instances: 2 }
deploys:
  - { service: web, image: elastic-test/web:1, replicas: 2, port: 80 }
metrics:
  prometheus: { port: 18806 }
  statsd: { port: 8125, prefix: lb1.elastic }
api:
  port: 18807
  keys: [{ access_key_id: AKIDEXAMPLE000001, secret_env: ELB_SECRET }]
`, { ELB_SECRET: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' });
    expect(c.name).toBe('lb1');
    expect(c.sources.cloud!.discover.ec2).toMatchObject({ port: 8080, region: 'eu-west-1', intervalMs: 30_000, tags: [{ key: 'Role', value: 'web' }] });
    expect(c.sources.legacy!.discover.static).toMatchObject({ backends: ['198.18.0.10:80', '198.18.0.11:80'] });
    expect(c.services[0]!.health).toMatchObject({ kind: 'http', path: '/id', intervalMs: 500, rise: 1, fall: 2 });
    expect(c.services[0]!.mapImage).toEqual({ port: 18804, protocol: 'tcp', address: undefined, dataplane: 'nft' });
    expect(c.services[1]!.edge).toMatchObject({ port: 18805, maxInstances: 2, tokenFile: '/etc/elastic/token', warm: 'haproxy' });
    expect(c.api?.keys).toEqual([{ accessKeyId: 'AKIDEXAMPLE000001', secret: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }]);
    expect(c.metrics.statsd).toEqual({ host: '127.0.0.1', port: 8125, prefix: 'lb1.elastic', intervalMs: 10_000 });
    expect(c.deploys[0]).toMatchObject({ service: 'web', replicas: 2, maxSurge: '1' });
  });

  it('the example in examples/elastic.yaml is valid', async () => {
    const text = await readFile(join(ROOT, 'examples', 'elastic.yaml'), 'utf8');
    expect(() => parseConfig(text, 'examples/elastic.yaml', { env: { ELASTIC_EDGE_TOKEN: 'x', ELB_SECRET: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' } })).not.toThrow();
  });
});

describe('elastic.yaml: invalid configs name the line and the path', () => {
  const cases: Array<[string, string, string]> = [
    ['port out of range', BASE.replace('port: 18801', 'port: 70000'), 'elastic.yaml:8: services[0].haproxy.port: must be 1-65535'],
    ['unknown key', BASE.replace('    haproxy:', '    hproxy: {}\n    haproxy:'), 'elastic.yaml:8: services[0].hproxy: unknown key'],
    ['unknown source', BASE.replace('sources: [web]', 'sources: [web, nope]'), 'elastic.yaml:7: services[0].sources[1]: no source named "nope"'],
    ['no version', BASE.replace('version: 1\n', ''), 'elastic.yaml:1: (root): version is required'],
    ['wrong type', BASE.replace('port: 80 }', 'port: "80" }'), 'elastic.yaml:4: sources.web.docker.port: must be an integer, not string'],
    ['two kinds of source', BASE.replace('port: 80 }', 'port: 80 }\n    static: { backends: ["198.18.0.1:80"] }'), 'elastic.yaml:4: sources.web: has docker and static: only one of docker, ec2, static is allowed'],
    ['served by nothing', BASE.replace('    haproxy: { port: 18801 }\n', ''), 'elastic.yaml:6: services[0]: needs at least one of: haproxy, nginx, varnish, map_image, edge'],
    ['bad backend', BASE.replace('docker: { image: elastic-test/web:1, port: 80 }', 'static: { backends: ["web1:80"] }'), 'elastic.yaml:4: sources.web.static.backends[0]: must be IP:PORT'],
    ['bad label', BASE.replace('port: 80 }', 'port: 80, label: [novalue] }'), 'elastic.yaml:4: sources.web.docker.label[0]: is not valid (key=value)'],
    ['bad check', BASE.replace('    haproxy:', '    health: { check: "ftp" }\n    haproxy:'), 'elastic.yaml:8: services[0].health.check: is not valid (tcp, http or http:/path)'],
    ['port used twice', BASE.replace('haproxy: { port: 18801 }', 'haproxy: { port: 18801 }\n    nginx: { port: 18801 }'), 'elastic.yaml:9: services[0].nginx.port: 127.0.0.1:18801 is already used by services[0].haproxy.port'],
    ['service twice', `${BASE}  - name: web\n    sources: [web]\n    nginx: { port: 18802 }\n`, 'elastic.yaml:9: services[1].name: service "web" is defined twice'],
    ['bad service name', BASE.replace('name: web', 'name: "we b"'), 'elastic.yaml:6: services[0].name: is not valid (service name)'],
    ['loopback mapping', BASE.replace('haproxy: { port: 18801 }', 'map_image: { port: 18801, address: 127.0.0.1 }'), 'elastic.yaml:8: services[0].map_image.address: loopback addresses cannot be mapped'],
    ['ec2 without port', BASE.replace('docker: { image: elastic-test/web:1, port: 80 }', 'ec2: { tags: [a=b] }'), 'elastic.yaml:4: sources.web.ec2: port is required'],
    ['edge without token', BASE.replace('haproxy: { port: 18801 }', 'edge: { port: 18801 }'), 'elastic.yaml:8: services[0].edge: needs token_file'],
    ['edge warm unknown', BASE.replace('haproxy: { port: 18801 }', 'edge: { port: 18801, command: [x], warm: nginx }'), 'elastic.yaml:8: services[0].edge.warm:'],
    ['edge min above max', BASE.replace('haproxy: { port: 18801 }', 'edge: { port: 18801, min_instances: 3, max_instances: 1, command: [x] }'), 'elastic.yaml:8: services[0].edge.min_instances: is above max_instances'],
    ['api key secret missing', `${BASE}api:\n  port: 18802\n  keys:\n    - access_key_id: AKIDEXAMPLE000001\n      secret_env: NOPE\n`, 'elastic.yaml:12: api.keys[0]: environment variable NOPE is not set'],
    ['api without keys', `${BASE}api:\n  port: 18802\n`, 'elastic.yaml:10: api: keys is required'],
    ['not YAML', 'version: 1\nservices: [\n', 'elastic.yaml:'],
    ['duplicate key', 'version: 1\nversion: 1\n', 'elastic.yaml:2: not valid YAML: Map keys must be unique'],
    ['list instead of map', 'version: 1\nsources: [a]\n', 'elastic.yaml:2: sources: must be a mapping, not a list'],
    ['statsd prefix', `${BASE}metrics:\n  statsd: { port: 8125, prefix: "a b" }\n`, 'elastic.yaml:10: metrics.statsd.prefix: is not valid (metric name prefix)'],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    const got = problems(text);
    expect(got.length, `no error for: ${text}`).toBeGreaterThan(0);
    expect(got.some((p) => p.startsWith(expected)), got.join('\n')).toBe(true);
  });

  it('lists every problem, not only the first', () => {
    const got = problems(BASE.replace('port: 18801', 'port: 0').replace('port: 80 }', 'port: -1 }'));
    expect(got).toHaveLength(2);
  });

  it('the error is a config error (exit 5) whose message names the first problem', () => {
    try {
      parse(BASE.replace('port: 18801', 'port: 70000'));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).exitCode).toBe(5);
      expect((err as ConfigError).message).toBe('elastic.yaml:8: services[0].haproxy.port: must be 1-65535');
    }
  });
});

describe('docs/elastic.schema.json', () => {
  it('is the schema the validator uses', async () => {
    const published = JSON.parse(await readFile(join(ROOT, 'docs', 'elastic.schema.json'), 'utf8'));
    // Regenerate: npx tsx -e "import('./src/engine/run/schema.ts').then(m=>process.stdout.write(JSON.stringify(m.publishedSchema(),null,2)+'\n'))" > docs/elastic.schema.json
    expect(published).toEqual(publishedSchema());
  });
});

describe('elastic.yaml: every problem, at its own line (issue 12 finding 9)', () => {
  it('YAML syntax errors name the line they are on, not line 1', () => {
    expect(problems('version: 1\nname: x\nname: y\nsources:\n  a: { static: { backends: ["198.18.0.1:80"] }\n    - x\n')).toEqual([
      'elastic.yaml:3: not valid YAML: Map keys must be unique',
      'elastic.yaml:6: not valid YAML: Missing , between flow map items',
      'elastic.yaml:6: not valid YAML: Block collections are not allowed within flow collections',
      'elastic.yaml:7: not valid YAML: Flow map in block collection must be sufficiently indented and end with a }',
    ]);
  });

  it('a reference error is listed together with schema errors, in line order', () => {
    expect(problems(BASE.replace('sources: [web]', 'sources: [nope]').replace('port: 18801', 'port: 99999'))).toEqual([
      'elastic.yaml:7: services[0].sources[0]: no source named "nope" (define it under sources:)',
      'elastic.yaml:8: services[0].haproxy.port: must be 1-65535',
    ]);
  });
});
