import { toDiscoverOptions, type SelectorFlagValues } from '../discover-options.js';
import { ExitCode, UserError } from '../errors.js';
import type { Logger } from '../runtime/logger.js';
import type { LabelRenderOptions } from '../render-labels.js';
import type { RenderOptions } from '../render.js';
import { serviceSpec, type ServiceFlagValues } from './services.js';

/** `render --routes-from-labels` flags -> the label render's options (Docker only, http only). */
export function labelRenderOptions(opts: Omit<RenderOptions, 'services'>, flags: SelectorFlagValues & ServiceFlagValues, logger?: Logger): LabelRenderOptions {
  const discover = toDiscoverOptions(flags, logger);
  if (!discover.docker || discover.static || discover.ec2) throw new UserError('--routes-from-labels reads Docker container labels', 'drop --backend/--file/--tag; --label and --network narrow the containers', ExitCode.usage);
  if (flags.mode === 'tcp') throw new UserError('--routes-from-labels routes http requests', 'drop --mode tcp', ExitCode.usage);
  if (discover.docker.selector.port !== undefined) throw new UserError('--routes-from-labels takes each container\'s port from elastic.http.port (or its only exposed port)', 'drop --port', ExitCode.usage);
  const { name: _name, ...base } = serviceSpec('labels', flags);
  return { render: opts, discover, base };
}
