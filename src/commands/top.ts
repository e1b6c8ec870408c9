import { Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { storeFlags } from '../fleet-flags.js';
import type { View } from '../ui/top/keys.js';
import { parseInterval, topJson, topOnce, topWatch, type TopJson, type TopOptions } from '../engine/top.js';

export default class Top extends BaseCommand {
  static override summary = 'Live dashboard of backends, kernel rule hits, proxy state and held connections';
  static override description = `Reads every running elastic process through its status socket (map-image, render, proxy edge and node, deploy, discover --watch) and shows services, backends with packet/byte/request rates computed from counter deltas, held-connection queues, and a timeline of what changed. With nothing running it shows the local Docker containers and says how to start. Keys: arrows or j/k, Enter drill down, Esc back, / filter, s sort, r reverse, ? help, q quit; d/x/u drain, disable and undrain a backend, +/- scale a deploy (each asks first). When stdout is not a terminal, or with --once, it prints one snapshot (tables, or JSON with --json) and exits; --json --watch streams NDJSON. See docs/top.md.`;
  static override examples = [
    '<%= config.bin %> top',
    '<%= config.bin %> top --interval 0.25 --view backends --sort pkt --reverse',
    '<%= config.bin %> top --once',
    '<%= config.bin %> top --json',
    '<%= config.bin %> top --json --watch --interval 5 | jq -c ".services[] | {service, rate, queued}"',
    '<%= config.bin %> top --etcd http://etcd-1:2379 --fleet edge --view hosts   # the fleet (docs/fleet.md)',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    interval: Flags.string({ char: 'i', description: 'refresh interval: seconds (0.25, 1) or milliseconds (250ms); 100ms to 60s', default: '1' }),
    once: Flags.boolean({ description: 'print one snapshot and exit (the default when stdout is not a terminal)' }),
    watch: Flags.boolean({ char: 'w', description: 'without a terminal: print a snapshot every interval (NDJSON with --json)' }),
    view: Flags.option({ options: ['overview', 'backends', 'timeline', 'hosts'] as const, default: 'overview', description: 'view to start in' })(),
    filter: Flags.string({ description: 'initial filter (words that must all match; field:value; !word)' }),
    sort: Flags.string({ description: 'initial sort column (service, kind, rate, conns, queued, address, health, pkt, bytes, sessions...)' }),
    reverse: Flags.boolean({ description: 'initial sort in descending order' }),
    'max-fps': Flags.integer({ description: 'cap on screen redraws per second', default: 10, min: 1, max: 60 }),
    docker: Flags.boolean({ description: 'show local containers when no elastic process is running', default: true, allowNo: true }),
    'docker-host': Flags.string({ description: 'Docker daemon for that (default $DOCKER_HOST or unix:///var/run/docker.sock)' }),
    ...storeFlags,
  };

  async run(): Promise<TopJson | void> {
    const { flags } = await this.parse(Top);
    const logger = this.makeLogger(flags, 'top');
    const intervalMs = parseInterval(flags.interval);
    // --etcd/--fleet: the Hosts view read from the store (else from a fleet daemon's socket, if any).
    const fleet = flags.etcd || flags.fleet ? await (await import('../engine/top/fleet-reader.js')).openFleetReader(flags) : undefined;
    try {
      return await this.show(flags, { intervalMs, docker: flags.docker ? { host: flags['docker-host'] } : null, logger, fleet });
    } finally {
      await fleet?.close();
    }
  }

  private async show(flags: { watch: boolean; once: boolean; view: View; filter?: string; sort?: string; reverse: boolean; 'max-fps': number }, opts: TopOptions): Promise<TopJson | void> {
    const { intervalMs } = opts;
    const json = this.jsonEnabled();

    if (flags.watch && (json || !this.isInteractive())) {
      const { topText } = await import('../ui/top/plain.js');
      for await (const state of topWatch(opts, this.shutdownSignal)) {
        if (json) this.ndjson(topJson(state, intervalMs));
        else process.stdout.write(`${topText(state)}\n`);
      }
      return;
    }
    if (json || flags.once || !this.isInteractive()) {
      const state = await topOnce(opts, this.shutdownSignal);
      if (json) return topJson(state, intervalMs);
      const { topText } = await import('../ui/top/plain.js');
      process.stdout.write(topText(state));
      return;
    }
    const color = !process.env.NO_COLOR && process.env.TERM !== 'dumb';
    // chalk (inside Ink) decides its colour level when first imported: tell it before. React's
    // development build (the default without NODE_ENV) is several times slower and heavier.
    if (!color) process.env.FORCE_COLOR = '0';
    process.env.NODE_ENV ??= 'production';
    const { runDashboard } = await import('../ui/top/run.js');
    await runDashboard(
      { ...opts, color, maxFps: flags['max-fps'], initial: { view: flags.view, filter: flags.filter, sort: flags.sort, reverse: flags.reverse } },
      this.shutdownSignal,
    );
  }
}
