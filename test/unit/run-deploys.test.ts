import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/engine/run/config.js';
import { toDeploySpec } from '../../src/engine/run/deploys.js';

/** `deploys:` entries become the same DeploySpec `elastic deploy` builds from its flags. */
const deployOf = (entry: string) => {
  const c = parseConfig(`version: 1\nsources:\n  s: { static: { backends: ["198.18.0.10:80"] } }\nservices:\n  - { name: web, sources: [s], haproxy: { port: 18899 } }\ndeploys:\n  - ${entry}\n`, 'elastic.yaml');
  return toDeploySpec(c.deploys[0]!);
};

describe('toDeploySpec', () => {
  it.each([
    ['{ service: web, image: "web:1", replicas: 3 }', { kind: 'auto' }],
    ['{ service: web, image: "web:1", replicas: 3, health: none }', { kind: 'none' }],
    ['{ service: web, image: "web:1", replicas: 3, port: 80, health: tcp }', { kind: 'tcp' }],
    ['{ service: web, image: "web:1", replicas: 3, port: 80, health: http }', { kind: 'http', path: '/' }],
    ['{ service: web, image: "web:1", replicas: 3, port: 80, health: "http:/healthz" }', { kind: 'http', path: '/healthz' }],
  ])('%s', (entry, health) => {
    const spec = deployOf(entry);
    expect(spec.service).toBe('web');
    expect(spec.replicas).toBe(3);
    expect(spec.container.image).toBe('web:1');
    expect(spec.container.health).toEqual(health);
  });

  it('carries port, network, env and the rollout budget', () => {
    const spec = deployOf('{ service: api, image: "api:2", replicas: 0, port: 8080, network: backend, env: ["A=1"], max_surge: "25%", max_unavailable: "1" }');
    expect(spec.container).toMatchObject({ port: 8080, network: 'backend', env: ['A=1'] });
    expect(spec.rollout).toMatchObject({ maxSurge: '25%', maxUnavailable: '1' });
    expect(spec.replicas).toBe(0);
  });
});
