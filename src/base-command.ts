import { Command, Flags, Errors } from '@oclif/core';
import { BugError, ExitCode, UserError } from './engine/errors.js';
import { createLogger, type Logger } from './engine/runtime/logger.js';
import { printable } from './engine/model/validate.js';

/**
 * What every elastic command shares: --debug, log flags, one error renderer, and SIGINT/SIGTERM
 * turned into an AbortSignal for long-running forms.
 *
 * Errors: a UserError prints one line (`error: WHAT. try: HINT`) on stderr, or a JSON object on
 * stdout with --json, and exits with its code. Anything else is a bug: one line, plus the stack
 * with --debug.
 */
export abstract class BaseCommand extends Command {
  static override baseFlags = {
    debug: Flags.boolean({ description: 'print stack traces and debug logs', helpGroup: 'GLOBAL' }),
    'log-json': Flags.boolean({ description: 'structured logs on stderr, one JSON object per line', helpGroup: 'GLOBAL' }),
    'log-level': Flags.option({ options: ['debug', 'info', 'warn', 'error'] as const, default: 'info', helpGroup: 'GLOBAL', description: 'least severe log level to print' })(),
  };

  private abort = new AbortController();
  private signalsInstalled = false;

  protected makeLogger(flags: { debug?: boolean; 'log-json'?: boolean; 'log-level'?: string }, component?: string): Logger {
    const level = flags.debug ? 'debug' : ((flags['log-level'] as 'info') ?? 'info');
    return createLogger({ level, json: flags['log-json'], component });
  }

  override async init(): Promise<void> {
    await super.init();
    // A reader that went away (`elastic top --json --watch | head -1`) ends a streaming command
    // like a signal does: oclif swallows EPIPE on stdout, so without this it would run forever.
    // A command only learns it on its next write (a pipe gives no notice while we are idle).
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' && !this.abort.signal.aborted) this.abort.abort(new Error('EPIPE'));
    });
  }

  /** Aborts on the first SIGINT/SIGTERM, or when stdout's reader is gone; a second signal exits at once. */
  protected get shutdownSignal(): AbortSignal {
    if (!this.signalsInstalled) {
      this.signalsInstalled = true;
      const onSignal = (sig: NodeJS.Signals) => {
        if (this.abort.signal.aborted) process.exit(130);
        this.abort.abort(new Error(sig));
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    return this.abort.signal;
  }

  protected isInteractive(): boolean {
    return Boolean(process.stdout.isTTY && process.stdin.isTTY && !process.env.CI);
  }

  /** Write one NDJSON line to stdout (streaming results). */
  protected ndjson(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value)}\n`);
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    const debug = process.argv.includes('--debug');
    const json = this.jsonEnabled();
    let message: string;
    let hint: string | undefined;
    let code: number;
    let kind: string;
    const help = `see elastic ${this.id?.replace(/:/g, ' ') ?? ''} --help`;
    // oclif rewrites the message of an error thrown while parsing a flag value:
    // "Parsing --wait \n\t<what went wrong>\nSee more help with --help". Take what went wrong.
    const flagParse = /^Parsing (--[\w-]+) ?\n\t([\s\S]*?)\nSee more help with --help$/.exec(err.message);
    if (err instanceof UserError) {
      ({ message, hint } = err);
      if (flagParse) message = flagParse[2]!;
      code = err.exitCode;
      kind = 'user';
    } else if (err instanceof Errors.ExitError) {
      throw err;
    } else if (flagParse) {
      message = `invalid ${flagParse[1]}: ${flagParse[2]!.replace(/^Expected/, 'expected').replace(/\s+/g, ' ').replace(/received: (.*)$/, 'received "$1"')}`;
      hint = help;
      code = ExitCode.usage;
      kind = 'usage';
    } else if (err instanceof Errors.CLIError || (err as { parse?: unknown }).parse) {
      // oclif's own parse errors: unknown flag, missing argument, bad option value.
      message = (err.message.split('\n')[0] ?? err.message).replace(/^Error: /, '');
      const more = err.message.split('\n').slice(1).map((l) => l.trim()).filter(Boolean).join(' ');
      hint = more ? `${more}; ${help}` : help;
      code = err.oclif?.exit === 2 || /Nonexistent flag|Unexpected argument|Missing required|Expected/.test(err.message) ? ExitCode.usage : (err.oclif?.exit ?? ExitCode.usage);
      kind = 'usage';
    } else {
      message = `elastic hit an unexpected error: ${err.message}`;
      hint = debug ? undefined : 're-run with --debug for the stack trace, and report it';
      code = ExitCode.failure;
      kind = err instanceof BugError ? 'bug' : 'internal';
    }
    if (json) {
      // Every problem of a config error (ConfigError.problems), not just the first.
      const problems = (err as { problems?: unknown }).problems;
      process.stdout.write(`${JSON.stringify({ error: { kind, message, hint, exitCode: code, ...(Array.isArray(problems) ? { problems } : {}) } })}\n`);
    } else {
      process.stderr.write(`error: ${printable(message, 400)}${hint ? `. try: ${printable(hint, 300)}` : ''}\n`);
    }
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = code;
    this.exit(code);
    return undefined;
  }
}
