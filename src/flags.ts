import { Flags } from '@oclif/core';
import type { DiscoverOptions } from './engine/discover.js';
import { parseLabels } from './engine/discovery/selector.js';
import { parseCheck } from './engine/health/checker.js';
import { ExitCode, UserError } from './engine/errors.js';
import { isIdent, parsePort, toIdent } from './engine/model/validate.js';
import type { Logger } from './engine/runtime/logger.js';

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
  'poll-interval': Flags.integer({ description: 'EC2: poll interval in seconds when watching', default: 15, min: 1, helpGroup: 'EC2' }),
  backend: Flags.string({ description: 'static backend IP:PORT (repeatable)', multiple: true, helpGroup: 'STATIC' }),
  file: Flags.string({ description: 'static backends from a YAML/JSON file (watched)', helpGroup: 'STATIC' }),
  service: Flags.string({ description: 'service name for the selected backends (default: from the image)', helpGroup: 'SELECT' }),
  check: Flags.string({ description: 'active health check: tcp, http or http:/path', helpGroup: 'HEALTH' }),
  'check-interval': Flags.integer({ description: 'health check interval, ms', default: 2000, min: 100, helpGroup: 'HEALTH' }),
  'check-timeout': Flags.integer({ description: 'health check timeout, ms', default: 1000, min: 10, helpGroup: 'HEALTH' }),
  rise: Flags.integer({ description: 'successes before healthy', default: 2, min: 1, helpGroup: 'HEALTH' }),
  fall: Flags.integer({ description: 'failures before unhealthy', default: 3, min: 1, helpGroup: 'HEALTH' }),
};

export interface SelectorFlagValues {
  image?: string;
  label?: string[];
  name?: string;
  network?: string;
  port?: string;
  'docker-host'?: string;
  'include-unhealthy'?: boolean;
  tag?: string[];
  region?: string;
  profile?: string;
  endpoint?: string;
  public?: boolean;
  'poll-interval'?: number;
  backend?: string[];
  file?: string;
  service?: string;
  check?: string;
  'check-interval'?: number;
  'check-timeout'?: number;
  rise?: number;
  fall?: number;
}

function defaultService(flags: SelectorFlagValues): string {
  if (flags.service) {
    if (!isIdent(flags.service)) throw new UserError(`invalid --service "${flags.service.slice(0, 60)}"`, 'use letters, digits, ".", "_" and "-"', ExitCode.usage);
    return flags.service;
  }
  if (flags.image) {
    const repo = flags.image.replace(/[:@].*$/, '').split('/').pop() ?? '';
    if (repo) return toIdent(repo);
  }
  return 'default';
}

export function toDiscoverOptions(flags: SelectorFlagValues, logger?: Logger): DiscoverOptions {
  const service = defaultService(flags);
  const port = flags.port === undefined ? undefined : parsePort(flags.port, '--port');
  const tags = parseLabels(flags.tag, '--tag');
  const labels = parseLabels(flags.label, '--label');
  const wantsEc2 = tags.length > 0 || Boolean(flags.region || flags.profile || flags.endpoint);
  const wantsStatic = (flags.backend?.length ?? 0) > 0 || Boolean(flags.file);
  const wantsDocker = Boolean(flags.image || labels.length || flags.name || flags.network) || (!wantsEc2 && !wantsStatic);
  const opts: DiscoverOptions = { logger, includeUnhealthy: flags['include-unhealthy'] };
  if (wantsDocker) {
    opts.docker = {
      host: flags['docker-host'],
      selector: { image: flags.image, labels, name: flags.name, network: flags.network, port, includeUnhealthy: Boolean(flags['include-unhealthy']), service },
    };
  }
  if (wantsEc2) {
    if (port === undefined) throw new UserError('EC2 discovery needs --port', 'pass the port your instances serve on, e.g. --port 8080', ExitCode.usage);
    opts.ec2 = {
      tags,
      port,
      addressType: flags.public ? 'public' : 'private',
      service,
      region: flags.region,
      profile: flags.profile,
      endpoint: flags.endpoint,
      intervalMs: (flags['poll-interval'] ?? 15) * 1000,
    };
  }
  if (wantsStatic) opts.static = { backends: flags.backend ?? [], file: flags.file, service };
  if (flags.check) {
    opts.check = parseCheck(flags.check, {
      intervalMs: flags['check-interval'],
      timeoutMs: flags['check-timeout'],
      rise: flags.rise,
      fall: flags.fall,
    });
  }
  return opts;
}
