import { Flags } from '@oclif/core';
import { ExitCode, UserError } from './engine/errors.js';
import { printable } from './engine/model/validate.js';

/** Flags shared by `proxy edge` and `proxy node`. */

const secondsParser = Flags.custom<number>({
  parse: async (text, _ctx, opts) => {
    const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
    if (!Number.isFinite(n) || n > MAX_SECONDS) {
      throw new UserError(`invalid --${opts.name} "${printable(text, 40)}"`, `give a number of seconds from 0 to ${MAX_SECONDS}, e.g. 30 or 0.5`, ExitCode.usage);
    }
    return Math.round(n * 1000);
  },
});
const MAX_SECONDS = 86_400;

/**
 * A duration in seconds (fractions allowed: tests use short timeouts), 0 to 86400, returned in
 * ms. `defaultMs` is shown in --help in seconds, the unit the flag takes.
 */
export function secondsFlag(opts: { description: string; default?: number }) {
  const ms = opts.default;
  return secondsParser({ description: opts.description, ...(ms === undefined ? {} : { default: ms, defaultHelp: async () => String(ms / 1000) }) });
}

export const tokenFileFlag = Flags.string({
  description: 'file holding the shared edge token (mode 600); default: $ELASTIC_EDGE_TOKEN',
});

/** The command after `--` (oclif's argv cannot be trusted to keep its order). */
export function commandAfterDashDash(argv: readonly string[]): string[] {
  const i = argv.indexOf('--');
  return i >= 0 ? argv.slice(i + 1) : [];
}

/** Anything before `--` that is not a flag is a mistake (strict = false lets it through). */
export function rejectStrayArgs(argv: readonly string[], parsedArgv: readonly string[], usage: string): void {
  const after = commandAfterDashDash(argv);
  const stray = parsedArgv.filter((a) => a !== '--').slice(0, Math.max(0, parsedArgv.filter((a) => a !== '--').length - after.length));
  if (stray.length) {
    throw new UserError(`unexpected argument "${printable(stray[0]!, 60)}"`, `put the command after --: ${usage}`, ExitCode.usage);
  }
}
