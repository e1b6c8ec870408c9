import type { DiscoverOptions } from './discover.js';
import { isImageReference, parseLabels } from './discovery/selector.js';
import { parseCheck } from './health/checker.js';
import { ExitCode, UserError } from './errors.js';
import { isIdent, parsePort, toIdent } from './model/validate.js';
import type { Logger } from './runtime/logger.js';

/**
 * Selector values (from `discover`-style flags, or a config file's `select:` block) ->
 * DiscoverOptions. Engine code: commands and config loaders both use it.
 */
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
  if (flags.image !== undefined && !isImageReference(flags.image)) {
    throw new UserError(`invalid --image "${flags.image.slice(0, 80)}"`, 'give repo:tag (e.g. elastic-test/web:1), registry/repo@sha256:..., or an image ID', ExitCode.usage);
  }
  const service = defaultService(flags);
  const port = flags.port === undefined ? undefined : parsePort(flags.port, '--port');
  const tags = parseLabels(flags.tag, '--tag');
  const labels = parseLabels(flags.label, '--label');
  const wantsEc2 = tags.length > 0 || Boolean(flags.region || flags.profile || flags.endpoint);
  // An explicit empty list (`static: { backends: [] }`, `select: { backend: [] }`) is a static
  // source with no backends, never "no selector given": that would serve every container.
  const wantsStatic = flags.backend !== undefined || Boolean(flags.file);
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
