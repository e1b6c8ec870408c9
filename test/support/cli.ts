import { execa, type Options } from 'execa';
import { fileURLToPath } from 'node:url';

/** Run the real built binary (bin/run.js, dist/): integration tests drive what operators run. */
export const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url));

export function elastic(args: string[], opts: Options = {}) {
  return execa(process.execPath, [BIN, ...args], { reject: false, timeout: 60_000, stdin: 'ignore', ...opts, env: { CI: 'true', ...opts.env } });
}
