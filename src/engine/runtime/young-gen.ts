import { setFlagsFromString } from 'node:v8';

/**
 * V8's young generation for `elastic run` (bin/run.js keeps it at its initial size from the
 * start, unless the operator gave semi-space flags): a daemon that only watches and applies
 * allocates little, and a grown young generation (up to 2 x 16 MB) is most of an idle daemon's
 * memory over its goal (docs/BENCHMARKS.md, fleet idle cost). The edge proxy lives in the daemon
 * and allocates per connection: while it runs, V8 may grow it again (its default, factor 2).
 * The growth factor is read at each growth, so setting it at run time takes effect.
 */
const SMALL = Symbol.for('elastic.smallYoungGen');

export function youngGenerationFor(proxying: boolean): void {
  if (!(globalThis as Record<symbol, unknown>)[SMALL]) return; // not started by bin/run.js, or the operator's flags
  setFlagsFromString(`--semi-space-growth-factor=${proxying ? 2 : 1}`);
}
