import { Flags } from '@oclif/core';
import { BaseCommand } from '../base-command.js';
import { selectorFlags, toDiscoverOptions } from '../flags.js';
import { discoverOnce, discoverWatch, serveDiscoverStatus, type DiscoverResult } from '../engine/discover.js';
import { discoverTable, watchJsonLines, watchTextLines, backendJson } from '../ui/discover.js';

export default class Discover extends BaseCommand {
  static override summary = 'List the backends that exist right now: Docker containers, EC2 instances, static lists';
  static override description = `Selects running Docker containers (by image, label, name, network), running EC2 instances (by tag), and static IP:PORT lists, and prints where each backend is. Containers whose health check is not healthy are left out unless --include-unhealthy. With --watch, stays in the foreground and prints a line for every backend added, removed or changed (NDJSON with --json), following Docker events and resyncing periodically; it reconnects by itself when dockerd restarts.`;
  static override examples = [
    '<%= config.bin %> discover --image elastic-test/web:1 --port 80',
    '<%= config.bin %> discover --label app=api --network backend --json',
    '<%= config.bin %> discover --tag Role=web --port 8080 --region eu-west-1',
    '<%= config.bin %> discover --backend 198.18.0.10:80 --backend 198.18.0.11:80 --check http:/healthz',
    '<%= config.bin %> discover --image elastic-test/web:1 --port 80 --watch --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...selectorFlags,
    watch: Flags.boolean({ char: 'w', description: 'stay running and print changes as they happen' }),
  };

  async run(): Promise<DiscoverResult | void> {
    const { flags } = await this.parse(Discover);
    const logger = this.makeLogger(flags, 'discover');
    const opts = toDiscoverOptions(flags, logger);
    const json = this.jsonEnabled();

    if (flags.watch) {
      const status = await serveDiscoverStatus(opts, logger);
      try {
        for await (const update of discoverWatch(opts, this.shutdownSignal)) {
          status.update(update);
          const lines = json ? watchJsonLines(update) : watchTextLines(update);
          if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
        }
      } finally {
        await status.close();
      }
      return;
    }

    const result = await discoverOnce(opts);
    if (result.backends.length === 0) {
      process.stderr.write(`note: no running backend matches${result.skipped.length ? ` (${result.skipped.length} skipped: ${result.skipped[0]!.reason})` : ''}\n`);
    }
    if (json) return { ...result, backends: result.backends.map(backendJson) } as unknown as DiscoverResult;
    process.stdout.write(discoverTable(result));
    return result;
  }
}
