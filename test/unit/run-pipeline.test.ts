import { describe, expect, it } from 'vitest';
import type { Backend } from '../../src/engine/model/backend.js';
import { judge, unionOf } from '../../src/engine/run/backends.js';
import { elbBackends, elbSpecs, instanceHealth } from '../../src/engine/run/elb-host.js';
import type { ElbState } from '../../src/engine/run/elb/model.js';

const b = (id: string, address: string, port = 80, name = id): Backend => ({ id, name, service: 'src', source: 'docker', address, port, state: 'running', health: 'none', labels: {}, since: '2026-01-01T00:00:00Z' });

describe('service backends', () => {
  it('unions sources, dedupes by id, relabels with the service, sorts', () => {
    const set = unionOf('web', [[b('docker:b', '198.18.0.3'), b('docker:a', '198.18.0.2')], undefined, [b('docker:a', '198.18.0.2')]]);
    expect(set.map((x) => [x.id, x.service])).toEqual([['docker:a', 'web'], ['docker:b', 'web']]);
  });

  const svc = { name: 'web', guard: { minBackends: 1, maxChangePct: 50 } };
  const alive = { isGone: async () => false };
  const cases: Array<[string, Backend[], string[] | undefined, boolean, string[]]> = [
    ['first set', [b('a', '198.18.0.2')], undefined, true, ['a']],
    ['empty is below min: waits', [], undefined, false, []],
    ['empty after some: the live ones keep serving', [], ['a'], true, ['a']],
    ['half removed is allowed', [b('a', '198.18.0.2')], ['a', 'b'], true, ['a']],
    ['more than half removed: the removals are refused', [b('a', '198.18.0.2')], ['a', 'b', 'c'], true, ['a', 'b', 'c']],
    ['additions are free', [b('a', '198.18.0.2'), b('b', '198.18.0.3'), b('c', '198.18.0.4')], ['a'], true, ['a', 'b', 'c']],
  ];
  it.each(cases)('guardrails: %s', async (_n, next, previous, accepted, served) => {
    const v = await judge(svc, next, previous?.map((id) => b(id, '198.18.0.9')), alive);
    expect(v.accepted).toBe(accepted);
    expect(v.accepted ? v.backends.map((x) => x.id) : []).toEqual(served);
  });
});

describe('ELB load balancers as HAProxy services', () => {
  const state: ElbState = {
    v: 1,
    loadBalancers: [
      {
        name: 'api',
        created: '2026-01-01T00:00:00Z',
        listeners: [
          { protocol: 'HTTP', loadBalancerPort: 18850, instanceProtocol: 'HTTP', instancePort: 8080 },
          { protocol: 'TCP', loadBalancerPort: 18851, instanceProtocol: 'TCP', instancePort: 9000 },
        ],
        instances: ['0123456789ab', 'web-1', '198.18.0.9:7000', '198.18.0.10', 'fedcba987654'],
        healthCheck: { target: 'HTTP:8080/healthz', interval: 10, timeout: 5, unhealthyThreshold: 2, healthyThreshold: 2 },
        availabilityZones: [],
      },
    ],
  };
  const containers = [b('docker:0123456789ab', '198.18.0.2', 1, 'app-1'), b('docker:111111111111', '198.18.0.3', 1, 'web-1')];

  it('one service per listener, bound on the API address, checked as the health check says', () => {
    expect(elbSpecs(state, { address: '127.0.0.1', slots: 4 })).toEqual([
      { name: 'elb-api-18850', bind: { address: '127.0.0.1', port: 18850 }, mode: 'http', balance: 'roundrobin', check: { kind: 'http', path: '/healthz', intervalMs: 10_000 }, minSlots: 4 },
      { name: 'elb-api-18851', bind: { address: '127.0.0.1', port: 18851 }, mode: 'tcp', balance: 'roundrobin', check: { kind: 'http', path: '/healthz', intervalMs: 10_000 }, minSlots: 4 },
    ]);
  });

  it('containers (by id or name) take the InstancePort; ip:port is kept; unknown containers are left out', () => {
    const sets = elbBackends(state, containers, 'now');
    expect(sets['elb-api-18850']!.map((x) => `${x.address}:${x.port}`).sort()).toEqual(['198.18.0.10:8080', '198.18.0.2:8080', '198.18.0.3:8080', '198.18.0.9:7000']);
    expect(sets['elb-api-18851']!.map((x) => `${x.address}:${x.port}`).sort()).toEqual(['198.18.0.10:9000', '198.18.0.2:9000', '198.18.0.3:9000', '198.18.0.9:7000']);
  });

  it('instance health from HAProxy server states', () => {
    const servers = [
      { service: 'elb-api-18850', address: '198.18.0.2', port: 8080, status: 'UP' },
      { service: 'elb-api-18851', address: '198.18.0.2', port: 9000, status: 'UP' },
      { service: 'elb-api-18850', address: '198.18.0.3', port: 8080, status: 'DOWN' },
      { service: 'elb-api-18851', address: '198.18.0.3', port: 9000, status: 'UP' },
    ];
    const h = Object.fromEntries(instanceHealth(state.loadBalancers[0]!, containers, servers).map((s) => [s.instanceId, s.state]));
    expect(h).toEqual({ '0123456789ab': 'InService', 'web-1': 'OutOfService', '198.18.0.9:7000': 'Unknown', '198.18.0.10': 'Unknown', fedcba987654: 'OutOfService' });
  });
});
