import { eventContainerId, isStopKill, signalNumber } from '../../src/engine/discovery/docker/stopping.js';
import { describe, expect, it } from 'vitest';
import type Docker from 'dockerode';
import { healthOf, imageMatcher, matchesImage, parseContainer } from '../../src/engine/discovery/docker/parse.js';
import type { DockerSelector } from '../../src/engine/discovery/selector.js';

const IMG = 'sha256:9e420cf1624fe94bbc3d5c7643ffd6af64165f0dfed4864d16804b6f1dc36e31';

function container(over: Partial<Docker.ContainerInfo> = {}): Docker.ContainerInfo {
  return {
    Id: 'abcdef0123456789abcdef',
    Names: ['/web-1'],
    Image: 'elastic-test/web:1',
    ImageID: IMG,
    Command: 'httpd',
    Created: 1_790_000_000,
    Ports: [{ PrivatePort: 80, Type: 'tcp' } as Docker.Port],
    Labels: {},
    State: 'running',
    Status: 'Up 3 seconds',
    HostConfig: { NetworkMode: 'bridge' },
    NetworkSettings: { Networks: { bridge: { IPAddress: '198.18.0.2' } as Docker.NetworkInfo } },
    Mounts: [],
    ...over,
  } as Docker.ContainerInfo;
}

const sel = (over: Partial<DockerSelector> = {}): DockerSelector => ({ labels: [], includeUnhealthy: false, service: 'web', ...over });

describe('parseContainer: container -> backend or skip', () => {
  const cases: Array<[string, Docker.ContainerInfo, DockerSelector, string | null]> = [
    ['running, one network, one port', container(), sel(), '198.18.0.2:80 web'],
    ['explicit --port wins', container(), sel({ port: 8080 }), '198.18.0.2:8080 web'],
    ['not running', container({ State: 'exited' }), sel(), null],
    ['paused is not running', container({ State: 'paused' }), sel(), null],
    ['other image ref', container({ Image: 'nginx:1' }), sel({ image: 'elastic-test/web:1' }), null],
    ['same ref', container(), sel({ image: 'elastic-test/web:1' }), '198.18.0.2:80 web'],
    ['image id prefix', container({ Image: 'whatever:2' }), sel({ image: '9e420cf1624f' }), '198.18.0.2:80 web'],
    ['tag moved: container shows an id', container({ Image: IMG.slice(7, 19) }), sel({ image: 'elastic-test/web:1' }), null],
    ['label required and present', container({ Labels: { app: 'x' } }), sel({ labels: [{ key: 'app', value: 'x' }] }), '198.18.0.2:80 web'],
    ['label required and absent', container(), sel({ labels: [{ key: 'app', value: 'x' }] }), null],
    ['name glob matches', container(), sel({ name: 'web-*' }), '198.18.0.2:80 web'],
    ['name glob does not match', container(), sel({ name: 'api-*' }), null],
    ['regex characters in glob are literal', container({ Names: ['/web.1'] }), sel({ name: 'web.1' }), '198.18.0.2:80 web'],
    ['elastic.service label names the service', container({ Labels: { 'elastic.service': 'api' } }), sel(), '198.18.0.2:80 api'],
    ['hostile elastic.service label is ignored', container({ Labels: { 'elastic.service': 'a b;c' } }), sel(), '198.18.0.2:80 web'],
    ['unhealthy skipped', container({ Status: 'Up 1 minute (unhealthy)' }), sel(), 'skip: health is unhealthy'],
    ['starting skipped', container({ Status: 'Up 1 second (health: starting)' }), sel(), 'skip: health is starting'],
    ['unhealthy kept when asked', container({ Status: 'Up (unhealthy)' }), sel({ includeUnhealthy: true }), '198.18.0.2:80 web'],
    ['several networks: ambiguous', container({ NetworkSettings: { Networks: { a: { IPAddress: '198.18.1.2' }, b: { IPAddress: '198.18.2.2' } } } as never }), sel(), 'skip: on several networks (a, b); pass --network'],
    ['several networks, --network picks', container({ NetworkSettings: { Networks: { a: { IPAddress: '198.18.1.2' }, b: { IPAddress: '198.18.2.2' } } } as never }), sel({ network: 'b' }), '198.18.2.2:80 web'],
    ['not on the asked network', container(), sel({ network: 'b' }), 'skip: not on network b'],
    ['host network: no IP', container({ NetworkSettings: { Networks: { host: { IPAddress: '' } } } as never }), sel(), 'skip: no IP address (host network or none)'],
    ['no exposed port and no --port', container({ Ports: [] }), sel(), 'skip: exposes no port; pass --port'],
    ['several ports', container({ Ports: [{ PrivatePort: 80, Type: 'tcp' }, { PrivatePort: 443, Type: 'tcp' }] as Docker.Port[] }), sel(), 'skip: exposes several ports (80, 443); pass --port'],
    ['garbage address', container({ NetworkSettings: { Networks: { bridge: { IPAddress: '1.2.3.4 -j ACCEPT' } } } as never }), sel(), 'skip: invalid IP address'],
  ];
  it.each(cases)('%s', (_name, info, selector, expected) => {
    const r = parseContainer(info, selector, imageMatcher(selector));
    const got = r === null ? null : r.ok ? `${r.backend.address}:${r.backend.port} ${r.backend.service}` : `skip: ${r.reason}`;
    expect(got).toBe(expected);
  });

  it('keeps hostile names printable and drops control-character labels', () => {
    const r = parseContainer(container({ Names: ['/evil\n\u001b[2Jname'], Labels: { ok: 'yes', 'bad\nkey': 'x', good: 'v\u0007' } }), sel(), null);
    expect(r && r.ok && r.backend.name).toBe('evil??[2Jname');
    expect(r && r.ok && r.backend.labels).toEqual({ ok: 'yes' });
  });

  it('uses the real start time when known', () => {
    const r = parseContainer(container(), sel(), null, '2026-01-02T03:04:05.000Z');
    expect(r && r.ok && r.backend.since).toBe('2026-01-02T03:04:05.000Z');
    expect(r && r.ok && r.backend.id).toBe('docker:abcdef012345');
  });
});

describe('health from docker status text', () => {
  it.each([
    ['Up 2 seconds', 'none'],
    ['Up 2 seconds (healthy)', 'healthy'],
    ['Up 2 seconds (unhealthy)', 'unhealthy'],
    ['Up 1 second (health: starting)', 'starting'],
    [undefined, 'none'],
  ] as const)('%s -> %s', (status, health) => expect(healthOf(status)).toBe(health));
});

describe('image references', () => {
  it.each([
    ['web', 'web:latest', true],
    ['docker.io/library/web:latest', 'web', true],
    ['registry:5000/team/web', 'registry:5000/team/web:latest', true],
    ['web:1', 'web:2', false],
  ])('%s vs container %s', (wanted, containerRef, same) => {
    expect(matchesImage({ Image: containerRef, ImageID: IMG }, imageMatcher(sel({ image: wanted })))).toBe(same);
  });
});

describe('a kill event that starts a stop (stopping.ts)', () => {
  const kill = (signal: string) => ({ Type: 'container', Action: 'kill', Actor: { ID: 'a'.repeat(64), Attributes: { signal } } });
  it.each([
    ['15', '', true],
    ['15', 'SIGTERM', true],
    ['9', 'SIGQUIT', true],
    ['3', 'SIGQUIT', true],
    ['3', 'QUIT', true],
    ['3', '3', true],
    ['15', 'SIGQUIT', false],
    ['1', '', false],
    ['x', '', false],
  ])('signal %s with StopSignal "%s": %s', (signal, stopSignal, expected) => {
    expect(isStopKill(kill(signal), stopSignal)).toBe(expected);
  });
  it('only kill events of containers count', () => {
    expect(isStopKill({ ...kill('15'), Action: 'die' }, '')).toBe(false);
    expect(eventContainerId({ Type: 'network', Actor: { ID: 'a'.repeat(64) } })).toBeUndefined();
    expect(eventContainerId({ Type: 'container', Actor: { ID: '../x' } })).toBeUndefined();
    expect(signalNumber('sigterm')).toBe(15);
    expect(signalNumber('99')).toBeUndefined();
  });
});
