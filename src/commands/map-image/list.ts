import { BaseCommand } from '../../base-command.js';
import { listMappings, type ListResult } from '../../engine/map-image.js';
import { listText } from '../../ui/map-image.js';

export default class MapImageList extends BaseCommand {
  static override summary = 'Show the port mappings, their backends and per-backend kernel counters';
  static override description = `Lists every mapping in the state file with its backends and, read from the kernel, the packets and bytes DNATed to each backend (for TCP: one packet per new connection). WATCHER is the pid of the --watch process keeping the mapping in sync, if one runs. Counters need root.`;
  static override examples = ['<%= config.bin %> map-image list', '<%= config.bin %> map-image list --json'];
  static override enableJsonFlag = true;

  async run(): Promise<ListResult> {
    await this.parse(MapImageList);
    const result = await listMappings();
    if (!this.jsonEnabled()) process.stdout.write(listText(result));
    return result;
  }
}
