import { buildProvider, type DiscoverOptions } from '../discover.js';
import { endpoint, type Backend } from '../model/backend.js';
import { printable } from '../model/validate.js';
import type { ServiceSample, SourceSample } from './model.js';

/**
 * With nothing configured, `top` shows the local containers (through discovery, like every other
 * command) and says how to start something. Listing goes through buildProvider().list(), not
 * discoverOnce(): a container with several ports is skipped, not an error, in a dashboard.
 */
export interface DockerFallback {
  host?: string;
  env?: NodeJS.ProcessEnv;
}

export const NOTHING_CONFIGURED =
  'nothing configured: start e.g. "elastic map-image 80 IMAGE 80 --watch" or "elastic discover --image IMAGE --watch"';

export async function dockerSample(opts: DockerFallback, now = Date.now()): Promise<SourceSample> {
  const discover: DiscoverOptions = {
    docker: { host: opts.host, selector: { labels: [], includeUnhealthy: true, service: 'containers' } },
    env: opts.env,
  };
  const provider = await buildProvider(discover);
  try {
    return containersSample(await provider.list(), now);
  } finally {
    await provider.close?.();
  }
}

/** Pure: containers grouped by service into one `docker.local` source. */
export function containersSample(backends: readonly Backend[], now: number): SourceSample {
  const byService = new Map<string, Backend[]>();
  for (const b of backends) byService.set(b.service, [...(byService.get(b.service) ?? []), b]);
  const services: ServiceSample[] = [...byService.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([service, list]) => ({
      service: printable(service, 64).replace(/\//g, '_'),
      role: 'containers',
      counters: {},
      detail: {},
      backends: list.map((b) => ({
        key: endpoint(b),
        id: b.id,
        name: printable(b.name, 80),
        address: b.address,
        port: b.port,
        source: b.source,
        health: b.health,
        state: b.state,
        counters: {},
      })),
    }));
  return { kind: 'docker', name: 'local', pid: null, time: now, services, events: [] };
}
