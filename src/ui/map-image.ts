import type { ListResult, MapImageResult, MappingView, StopResult } from '../engine/map-image.js';
import { formatBytes, renderTable } from './table.js';

/** Plain renderers for `map-image`: one row per backend, counters from the kernel. */
export function mappingsTable(mappings: ReadonlyArray<MappingView & { watcher?: number | null; lost?: boolean }>): string {
  const rows: string[][] = [];
  for (const m of mappings) {
    const head = [m.id, `${m.address ?? '*'}:${m.port}`, m.lost ? '(not in the state file)' : `${m.image} :${m.containerPort}`, `${m.dataplane} ${m.spread}`, m.watcher ? `watch pid ${m.watcher}` : '-'];
    if (m.backends.length === 0) rows.push([...head, '(none)', '', '', '']);
    m.backends.forEach((b, i) => {
      const cells = i === 0 ? head : ['', '', '', '', ''];
      rows.push([...cells, `${b.endpoint}${b.weight !== 1 ? ` @${b.weight}` : ''}${b.draining ? ' (draining)' : ''}`, b.name, b.packets === null ? '-' : String(b.packets), b.bytes === null ? '-' : formatBytes(b.bytes)]);
    });
  }
  return renderTable(['MAPPING', 'LISTEN', 'IMAGE', 'PLANE SPREAD', 'WATCHER', 'BACKEND', 'NAME', 'PACKETS', 'BYTES'], rows);
}

export function listText(r: ListResult): string {
  const conflicts = r.conflicts.map((c) => `conflict: ${c.id} is also mapped by another state directory (kernel namespace ${c.namespace ? `elastic_${c.namespace}` : 'elastic'}, ${c.dataplane}, ${c.targets.length} backend(s))\n`);
  const lost = r.mappings.some((m) => m.lost) ? ['note: mappings "not in the state file" are live kernel rules whose state was lost: stop PORT removes one, or re-declare it\n'] : [];
  const body = r.mappings.length === 0 ? 'no mappings\n' : mappingsTable(r.mappings);
  return body + [...conflicts, ...lost].join('') + (r.note ? `note: ${r.note}\n` : '');
}

export function mappedText(r: MapImageResult): string {
  const m = r.mapping;
  return `mapped ${m.address ?? '*'}:${m.port}/${m.protocol} -> ${m.backends.length} backend(s) of ${m.image} port ${m.containerPort} (${m.dataplane}, ${r.ms.toFixed(1)} ms)\n${mappingsTable([m])}`;
}

export function stoppedText(r: StopResult): string {
  return `stopped ${r.stopped} (${r.backends} backend(s)${r.via === 'watcher' ? ', the watching process exited' : ''})\n`;
}
