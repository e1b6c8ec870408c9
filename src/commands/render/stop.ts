import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { ExitCode, UserError } from '../../engine/errors.js';
import type { ProxyKind } from '../../engine/frontends/model.js';
import { toIdent } from '../../engine/model/validate.js';
import { renderStop } from '../../engine/render.js';

export default class RenderStop extends BaseCommand {
  static override summary = 'Stop the HAProxy or nginx that `render --start` started';
  static override description = `Finds the proxy by the render's pid file (default under the run dir, as render --start wrote it), checks that the pid is that proxy's master, and stops it gracefully: HAProxy soft stop (SIGUSR1), nginx SIGQUIT, so in-flight requests finish; SIGTERM after --timeout. An nginx master killed with -9 leaves its workers serving: those orphans (found by the master's session) are ended the same way. Stop a running render --watch first, or it starts the proxy again.`;
  static override examples = ['<%= config.bin %> render stop --service web', '<%= config.bin %> render stop --proxy nginx --instance-name edge'];
  static override enableJsonFlag = true;
  static override flags = {
    service: Flags.string({ description: 'the render to stop, by its service name (as given to render --service)' }),
    'instance-name': Flags.string({ description: 'the render to stop, by its --instance-name' }),
    proxy: Flags.option({ options: ['haproxy', 'nginx'] as const, default: 'haproxy', description: 'which proxy the render started' })(),
    pidfile: Flags.string({ description: 'pid file, if render was given --pidfile' }),
    timeout: Flags.integer({ description: 'seconds to let in-flight requests finish before SIGTERM', default: 30, min: 0, max: 3600 }),
  };

  async run() {
    const { flags } = await this.parse(RenderStop);
    const name = flags['instance-name'] ?? flags.service;
    if (!name) throw new UserError('say which render: --service NAME or --instance-name NAME', 'e.g. elastic render stop --service web', ExitCode.usage);
    const r = await renderStop({ instance: toIdent(name), proxy: flags.proxy as ProxyKind, pidFile: flags.pidfile, timeoutMs: flags.timeout * 1000 });
    const how = r.orphans ? ` (master was gone; ended its orphaned workers, pids ${r.orphans.join(', ')})` : r.forced ? ' (SIGTERM after --timeout)' : '';
    if (!this.jsonEnabled()) process.stdout.write(r.pid === null ? `${r.proxy}: not running\n` : `${r.proxy} (pid ${r.pid}): stopped${how}\n`);
    return r;
  }
}
