import { describe, expect, it } from 'vitest';
import { hostRules, maxconnFor, threadShares, warmConfig, warmThreads, WARM_HOST, type WarmConfigInput } from '../../src/engine/edge/warm-config.js';
import { parseNodeArgv } from '../../src/proxy-node-fast.js';

describe('warm path: HAProxy config (pure)', () => {
  it('host rules follow matchHost: exact names, then wildcards from the longest parent', () => {
    const hosts = new Map([
      ['*.example.com', 'b'],
      ['www.example.com', 'a'],
      ['*.api.example.com', 'c'],
    ]);
    expect(hostRules(hosts)).toEqual([
      { acl: '-m str www.example.com', route: 'a' },
      { acl: '-m end .api.example.com', route: 'c' },
      { acl: '-m end .example.com', route: 'b' },
    ]);
  });

  const input = (threads: number): WarmConfigInput => ({
    listeners: [
      { kind: 'tcp', port: 8080, route: 'raw' },
      { kind: 'http', port: 8081 },
    ],
    address: '127.0.0.1',
    edgePorts: [40001, 40002],
    hosts: new Map([['web.test', 'web']]),
    defaultRoute: 'raw',
    entries: new Map([
      ['raw', [41001, 41011]],
      ['web', [41002, 41012]],
    ]),
    threads,
    slots: 3,
    queueTimeoutMs: 30_000,
    headerTimeoutMs: 10_000,
    statsSocket: '/run/x/haproxy.sock',
    maxconn: 8000,
  });
  const sectionOf = (text: string, name: string) => text.split('\n\n').find((b) => b.includes(`frontend ${name}\n`) || b.startsWith(`frontend ${name}\n`)) ?? '';

  it('a route goes to HAProxy only with a free slot; otherwise to the edge listener of the same kind', () => {
    const text = warmConfig(input(1));
    const section = (name: string) => sectionOf(text, name);
    // Overflow of a route's backend reaches the edge's listener of the client's kind.
    expect(section('c0')).toContain('  bind 127.0.0.1:8080\n  tcp-request connection set-dst-port int(40001)\n  default_backend e0');
    expect(section('c0')).toContain('  use_backend r0_raw\n');
    expect(section('c0')).toContain('backend e0\n  server edge 127.0.0.1:40001');
    expect(section('c1').split('\n').filter((l) => l.includes('host0') || l.includes('inspect') || l.includes('accept') || l.startsWith('  use_backend'))).toEqual([
      '  tcp-request inspect-delay 10000ms',
      '  tcp-request content accept if HTTP',
      '  acl host0 req.hdr(host),field(1,:),lower -m str web.test',
      '  use_backend r0_web if host0',
      '  use_backend r0_raw',
    ]);
    expect(section('c1')).toContain('  tcp-request connection set-dst-port int(40002)');
    // No queue HAProxy would close in tcp mode: the edge (no maxconn, no port) is the last server.
    expect(text).toContain('frontend w0_web\n  bind 127.0.0.1:41002 accept-proxy\n  default_backend r0_web\nbackend r0_web\n  balance first\n  timeout queue 30000ms\n  server-template n 1-3 127.0.0.1:1 disabled maxconn 1\n  server edge 127.0.0.1\n');
    expect(text).not.toContain('be_conn_free');
    expect(text).toContain('global\n  maxconn 8000\n  nbthread 1\n');
    expect(text).not.toContain('thread 0');
  });

  it('two threads: each has its own backend per route, used only by streams of that thread, and its own entry bound to it', () => {
    const text = warmConfig(input(2));
    expect(text).toContain('global\n  maxconn 8000\n  nbthread 2\n');
    expect(sectionOf(text, 'c0').split('\n').filter((l) => / t\d|use_backend/.test(l))).toEqual(['  acl t0 thread 0', '  acl t1 thread 1', '  use_backend r0_raw if t0', '  use_backend r1_raw if t1']);
    // Host order first (exact, wildcards, default), the thread inside each rule.
    expect(sectionOf(text, 'c1').split('\n').filter((l) => l.startsWith('  use_backend'))).toEqual([
      '  use_backend r0_web if host0 t0',
      '  use_backend r1_web if host0 t1',
      '  use_backend r0_raw if t0',
      '  use_backend r1_raw if t1',
    ]);
    for (const [t, port] of [[0, 41002], [1, 41012]] as const) {
      expect(text).toContain(`frontend w${t}_web\n  bind 127.0.0.1:${port} accept-proxy thread ${t + 1}\n  default_backend r${t}_web\nbackend r${t}_web\n  balance first\n`);
    }
    expect(text.match(/^backend r\d_\w+$/gm)).toEqual(['backend r0_raw', 'backend r1_raw', 'backend r0_web', 'backend r1_web']);
  });

  it.each([
    // concurrency, slot, threads -> per-thread maxconn (their sum is the concurrency; 0: the thread's server stays in maintenance)
    [1, 1, 1, [1]],
    [8, 3, 1, [8]],
    [1, 1, 2, [0, 1]],
    [1, 2, 2, [1, 0]],
    [2, 1, 2, [1, 1]],
    [3, 1, 2, [1, 2]],
    [3, 2, 2, [2, 1]],
    [128, 1, 2, [64, 64]],
    [5, 1, 4, [1, 2, 1, 1]],
    [2, 3, 4, [1, 0, 0, 1]],
  ])('concurrency %i on slot %i over %i threads: %j', (c, slot, threads, want) => {
    expect(threadShares(c, slot, threads)).toEqual(want);
    expect(want.reduce((a, b) => a + b, 0)).toBe(c);
  });

  it.each([
    [1, 1],
    [2, 2],
    [16, 2],
    [0, 1],
  ])('threads on %i cores: %i', (cores, want) => expect(warmThreads(cores)).toBe(want));

  it.each([
    [null, 8000],
    [1_048_576, 8000],
    [20_000, 8000],
    [4096, 1948],
    [1024, 412],
    [256, 256],
  ])('maxconn under a hard descriptor limit of %s: %s', (limit, want) => expect(maxconnFor(limit)).toBe(want));

  it.each([
    ['www.example.com', true],
    ['*.example.com', true],
    ['a_b-c.test', true],
    ['bad host', false],
    ['x;y', false],
    ['*', false],
    ['a..b', false],
    ['ex.com\nfrontend', false],
  ])('host %j usable by HAProxy: %s', (host, ok) => expect(WARM_HOST.test(host)).toBe(ok));
});

describe('proxy node fast path: argv it takes, and argv left to oclif', () => {
  it.each([
    [['--', 'app'], { command: ['app'] }],
    [['-c', '4', '--route', 'api', '--', 'node', 's.js', '--x'], { concurrency: 4, route: 'api', command: ['node', 's.js', '--x'] }],
    [['--concurrency=8', '--idle-timeout', '1.5', '--log-level', 'warn', '--', 'a'], { concurrency: 8, idleTimeoutMs: 1500, logLevel: 'warn', command: ['a'] }],
    [['--app-port', '0', '--log-json', '--', 'a'], { appPort: 0, logJson: true, command: ['a'] }],
  ])('%j -> options', (argv, want) => expect(parseNodeArgv(argv)).toEqual(want));

  it.each([
    [['app']], // no --
    [['--']], // no command
    [['--help', '--', 'a']],
    [['--json', '--', 'a']],
    [['-c', '0', '--', 'a']],
    [['-c', '4097', '--', 'a']],
    [['-c', 'x', '--', 'a']],
    [['--grace', '-1', '--', 'a']],
    [['--grace', '90000', '--', 'a']],
    [['--route', 'a', '--route', 'b', '--', 'a']],
    [['--log-level', 'loud', '--', 'a']],
    [['stray', '--', 'a']],
    [['--edge', '--', 'a']],
  ])('%j -> oclif', (argv) => expect(parseNodeArgv(argv)).toBeNull());
});
