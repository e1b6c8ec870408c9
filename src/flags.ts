import { Flags } from '@oclif/core';
import { CHECK_RANGES } from './engine/health/checker.js';

/** An integer flag whose documented range (in its help) is enforced: outside it is a usage error. */
export function rangedInteger(description: string, defaultValue: number, [min, max]: readonly [number, number], helpGroup = 'HEALTH') {
  return Flags.integer({ description: `${description} (${min}-${max})`, default: defaultValue, min, max, helpGroup });
}

/**
 * Backend selector flags, shared by every command that discovers (discover, map-image, render).
 * One flag set, one translation to DiscoverOptions: the commands stay thin and consistent.
 */
export const selectorFlags = {
  image: Flags.string({ description: 'Docker: containers of this image (repo:tag or image ID)', helpGroup: 'DOCKER' }),
  label: Flags.string({ description: 'Docker: containers with this label (k=v, repeatable)', multiple: true, helpGroup: 'DOCKER' }),
  name: Flags.string({ description: 'Docker: container name pattern (* and ? wildcards)', helpGroup: 'DOCKER' }),
  network: Flags.string({ description: 'Docker: network whose IP to use (default: the only one)', helpGroup: 'DOCKER' }),
  port: Flags.string({ description: 'backend port (container port; required for EC2)', helpGroup: 'SELECT' }),
  'docker-host': Flags.string({ description: 'Docker daemon (default $DOCKER_HOST or unix:///var/run/docker.sock)', helpGroup: 'DOCKER' }),
  'include-unhealthy': Flags.boolean({ description: 'keep backends whose health check is not passing', helpGroup: 'SELECT' }),
  tag: Flags.string({ description: 'EC2: running instances with this tag (k=v, repeatable)', multiple: true, helpGroup: 'EC2' }),
  region: Flags.string({ description: 'EC2: region (default $AWS_REGION)', helpGroup: 'EC2' }),
  profile: Flags.string({ description: 'EC2: shared-config profile', helpGroup: 'EC2' }),
  endpoint: Flags.string({ description: 'EC2: API endpoint (compatible clouds, tests)', helpGroup: 'EC2' }),
  public: Flags.boolean({ description: 'EC2: use public addresses instead of private', helpGroup: 'EC2' }),
  'poll-interval': Flags.integer({ description: 'EC2: poll interval in seconds when watching (1-86400)', default: 15, min: 1, max: 86_400, helpGroup: 'EC2' }),
  backend: Flags.string({ description: 'static backend IP:PORT (repeatable)', multiple: true, helpGroup: 'STATIC' }),
  file: Flags.string({ description: 'static backends from a YAML/JSON file (watched)', helpGroup: 'STATIC' }),
  service: Flags.string({ description: 'service name for the selected backends (default: from the image)', helpGroup: 'SELECT' }),
  check: Flags.string({ description: 'active health check: tcp, http or http:/path', helpGroup: 'HEALTH' }),
  'check-interval': rangedInteger('health check interval, ms', 2000, CHECK_RANGES.intervalMs),
  'check-timeout': rangedInteger('health check timeout, ms', 1000, CHECK_RANGES.timeoutMs),
  rise: rangedInteger('successes before healthy', 2, CHECK_RANGES.rise),
  fall: rangedInteger('failures before unhealthy', 3, CHECK_RANGES.fall),
};

export { toDiscoverOptions, type SelectorFlagValues } from './engine/discover-options.js';
