import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { runNode } from '../../engine/proxy.js';
import { commandAfterDashDash, rejectStrayArgs, secondsFlag, tokenFileFlag } from '../../proxy-flags.js';

export default class ProxyNode extends BaseCommand {
  static override summary = 'Run an app instance behind an elastic edge, pulling at most --concurrency client connections at a time';
  static override description = `Starts the app given after -- with PORT and ELASTIC_ROUTE in its environment (and no ELASTIC_* variable of its own, the token least of all; a free port on --app-host unless --app-port), waits until it accepts connections, then keeps --concurrency authenticated pull connections open to the edge. Each carries one client connection at a time, so the app is never handed more than it can serve. Stops the app (TERM, then KILL after --grace) and exits when the edge says it is no longer needed, after --idle-timeout without a client, when the app exits, or on SIGINT/SIGTERM (active clients finish first, up to --grace). Started by an edge, it needs no flags: ELASTIC_EDGE, ELASTIC_ROUTE and ELASTIC_EDGE_TOKEN come from the environment. Serves the status socket node.<route>-<pid>.sock (drain, undrain, stop actions). See docs/proxy.md.`;
  static override examples = [
    '<%= config.bin %> proxy edge -p 8080 -- <%= config.bin %> proxy node -- node server.js',
    'ELASTIC_EDGE_TOKEN=... <%= config.bin %> proxy node --edge 127.0.0.1:7070 --route api --concurrency 4 -- ./api-server',
    '<%= config.bin %> proxy node --edge 127.0.0.1:7070 --token-file /etc/elastic/token --idle-timeout 600 -- python3 -m http.server',
  ];
  static override strict = false;
  static override enableJsonFlag = true;
  static override flags = {
    edge: Flags.string({ description: 'HOST:PORT of the edge node port (default: $ELASTIC_EDGE)' }),
    route: Flags.string({ description: 'route this app serves (default: $ELASTIC_ROUTE, else "default")' }),
    concurrency: Flags.integer({ char: 'c', description: 'client connections the app can serve at once', default: 1, min: 1, max: 4096 }),
    'token-file': tokenFileFlag,
    'app-host': Flags.string({ description: 'address the app listens on', default: '127.0.0.1' }),
    'app-port': Flags.integer({ description: 'port the app listens on (0: a free port, passed as PORT)', default: 0, min: 0, max: 65535 }),
    'start-timeout': secondsFlag({ description: 'seconds for the app to accept connections', default: 30_000 }),
    'idle-timeout': secondsFlag({ description: 'exit after this many seconds without a client (0: the edge decides)', default: 0 }),
    'orphan-timeout': secondsFlag({ description: 'exit when the edge is unreachable this long (default: 30 when started by an edge, else never)' }),
    grace: secondsFlag({ description: 'seconds for active clients to finish and between TERM and KILL of the app', default: 10_000 }),
  };

  async run(): Promise<{ reason: string; code: number }> {
    const { flags, argv } = await this.parse(ProxyNode);
    const logger = this.makeLogger(flags, 'node');
    const command = commandAfterDashDash(this.argv);
    rejectStrayArgs(this.argv, argv as string[], 'elastic proxy node [--edge HOST:PORT] -- COMMAND...');
    const exit = await runNode(
      {
        edge: flags.edge,
        route: flags.route,
        concurrency: flags.concurrency,
        command,
        tokenFile: flags['token-file'],
        appHost: flags['app-host'],
        appPort: flags['app-port'] || undefined,
        startTimeoutMs: flags['start-timeout'],
        idleTimeoutMs: flags['idle-timeout'],
        orphanTimeoutMs: flags['orphan-timeout'],
        graceMs: flags.grace,
        logger,
      },
      this.shutdownSignal,
    );
    logger.info('node stopped', { reason: exit.reason });
    if (exit.code !== 0) process.exitCode = exit.code;
    return exit;
  }
}
