import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { stopAllMappings, stopMapping, type StopResult } from '../../engine/map-image.js';
import { ExitCode, UserError } from '../../engine/errors.js';
import { parsePort } from '../../engine/model/validate.js';
import { stoppedText } from '../../ui/map-image.js';

export default class MapImageStop extends BaseCommand {
  static override summary = 'Remove a port mapping: exactly its rules, nothing else';
  static override description = `Removes the mapping's chains/rules and its conntrack entries; with the last mapping, elastic's hook rules, chains and nft table go too, so the ruleset is what it was before. If a --watch process keeps the mapping, it is asked to remove it and exit. --all removes every mapping and every kernel object elastic owns, including leftovers a lost state file no longer lists.`;
  static override examples = ['<%= config.bin %> map-image stop 80', '<%= config.bin %> map-image stop 5353 --protocol udp --json', '<%= config.bin %> map-image stop --all'];
  static override enableJsonFlag = true;
  static override args = { port: Args.string({ description: 'mapped host port (omit with --all)' }) };
  static override flags = {
    all: Flags.boolean({ description: 'remove every mapping and every elastic kernel object' }),
    protocol: Flags.option({ options: ['tcp', 'udp'] as const, default: 'tcp', description: 'protocol of the mapping' })(),
  };

  async run(): Promise<StopResult | { v: 1; stopped: StopResult[] }> {
    const { args, flags } = await this.parse(MapImageStop);
    const logger = this.makeLogger(flags, 'map-image');
    if (flags.all) {
      const stopped = await stopAllMappings({ logger });
      if (!this.jsonEnabled()) process.stdout.write(stopped.length ? stopped.map(stoppedText).join('') : 'no mappings; removed any leftover elastic rules\n');
      return { v: 1, stopped };
    }
    if (args.port === undefined) throw new UserError('which mapping? PORT is missing', 'give the mapped port (elastic map-image stop 80), or --all', ExitCode.usage);
    const result = await stopMapping(parsePort(args.port, 'PORT'), flags.protocol, { logger });
    if (!this.jsonEnabled()) process.stdout.write(stoppedText(result));
    return result;
  }
}
