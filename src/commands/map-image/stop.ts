import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { stopMapping, type StopResult } from '../../engine/map-image.js';
import { parsePort } from '../../engine/model/validate.js';
import { stoppedText } from '../../ui/map-image.js';

export default class MapImageStop extends BaseCommand {
  static override summary = 'Remove a port mapping: exactly its rules, nothing else';
  static override description = `Removes the mapping's chains/rules and its conntrack entries; with the last mapping, elastic's
hook rules, chains and nft table go too, so the ruleset is what it was before. If a --watch process
keeps the mapping, it is asked to remove it and exit.`;
  static override examples = ['<%= config.bin %> map-image stop 80', '<%= config.bin %> map-image stop 5353 --protocol udp --json'];
  static override enableJsonFlag = true;
  static override args = { port: Args.string({ description: 'mapped host port', required: true }) };
  static override flags = {
    protocol: Flags.option({ options: ['tcp', 'udp'] as const, default: 'tcp', description: 'protocol of the mapping' })(),
  };

  async run(): Promise<StopResult> {
    const { args, flags } = await this.parse(MapImageStop);
    const result = await stopMapping(parsePort(args.port, 'PORT'), flags.protocol, { logger: this.makeLogger(flags, 'map-image') });
    if (!this.jsonEnabled()) process.stdout.write(stoppedText(result));
    return result;
  }
}
