import { Flags } from '@oclif/core';
import { onReloadSignal } from '../engine/runtime/reload-signal.js';
import { BaseCommand } from '../base-command.js';
import { ExitCode, UserError } from '../engine/errors.js';
import { checkRunConfig, ConfigError, runDaemon, runOnce, type CheckResult, type OnceResult } from '../engine/run.js';
import { checkText, onceText } from '../ui/run.js';
import { runFleetHost } from '../engine/fleet/host.js';
import { hostFlags } from '../fleet-flags.js';

export default class Run extends BaseCommand {
  static override summary = 'Run the daemon of an LB host: every service of elastic.yaml kept in sync, an ELB-compatible API and metrics';
  static override description = `Reads one declarative config (sources, services and how each is served: kernel DNAT, HAProxy, nginx, Varnish, the pull edge; optional deploys, metrics, ELB API) and keeps everything in sync: one discovery watch per source, health checks and guardrails per service, one coalescing sync runner per applier. SIGHUP re-reads the config (validated first: a bad one is refused and the old one keeps running). SIGTERM stops cleanly; DNAT rules and proxies stay and keep serving. Serves the status socket run.<name>.sock. --check validates only (exit 5 with file:line: path on error); --once syncs once and exits (cron). See docs/run.md; the schema is docs/elastic.schema.json.`;
  static override examples = [
    '<%= config.bin %> run -c /etc/elastic/elastic.yaml',
    '<%= config.bin %> run -c elastic.yaml --check',
    '<%= config.bin %> run -c elastic.yaml --once --json',
    '<%= config.bin %> run --etcd http://etcd-1:2379 --fleet edge --host lb-1   # config from the fleet store (docs/fleet.md)',
    'kill -HUP $(pidof elastic)   # re-read the config',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    config: Flags.string({ char: 'c', description: 'the config file', default: '/etc/elastic/elastic.yaml' }),
    check: Flags.boolean({ description: 'validate the config and exit (exit 5 on error); not with --once' }),
    once: Flags.boolean({ description: 'sync every service once and exit' }),
    'once-timeout': Flags.integer({ description: '--once: seconds to wait for every source to answer', default: 60, min: 1 }),
    ...hostFlags,
  };

  async run(): Promise<CheckResult | OnceResult | void> {
    const { flags } = await this.parse(Run);
    const logger = this.makeLogger(flags, 'run');
    const json = this.jsonEnabled();
    if (flags.check && flags.once) throw new UserError('--check and --once cannot be used together', '--check only validates the config; --once validates it and syncs once', ExitCode.usage);
    if (flags.host) {
      if (flags.check || flags.once) throw new UserError('--host runs a fleet host; --check and --once take a file', 'validate a fleet file with elastic cluster push --dry-run', ExitCode.usage);
      return runFleetHost({ ...flags, host: flags.host, addresses: flags.address, leaseTtl: flags['lease-ttl'], logger }, this.shutdownSignal, (reload) => onReloadSignal(reload));
    }
    if (flags.check) {
      let result: CheckResult;
      try {
        result = await checkRunConfig(flags.config);
      } catch (err) {
        // Every problem on stderr (the error line carries the first one).
        if (err instanceof ConfigError && err.problems.length > 1 && !json) for (const p of err.problems) process.stderr.write(`${p}\n`);
        throw err;
      }
      if (!json) process.stdout.write(checkText(result));
      return result;
    }
    if (flags.once) {
      const result = await runOnce({ file: flags.config, logger }, this.shutdownSignal, flags['once-timeout'] * 1000);
      if (!json) process.stdout.write(onceText(result));
      return result;
    }
    await runDaemon({ file: flags.config, logger }, this.shutdownSignal, (d) => {
      // reload() never rejects: a failure is logged and counted, the config in force keeps running.
      onReloadSignal(() => void d.reload());
    });
  }
}
