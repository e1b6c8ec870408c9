import { execa } from 'execa';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import { reloadPlan, type Applier, type ApplyOutcome, type ApplyPlan, type DesiredRender } from './applier.js';
import type { HaproxyApplied } from './haproxy/plan.js';
import type { ProxyKind } from './model.js';

/**
 * Anything else: run the operator's reload command (an argument array, never a shell string)
 * after the validated file is in place. A non-zero exit is a failed apply (the file is restored).
 * The command gets ELASTIC_RENDER_FILE in its environment.
 */
export class CommandApplier implements Applier {
  readonly paths: Readonly<Record<string, string>>;

  constructor(
    readonly proxy: ProxyKind,
    private readonly argv: readonly string[],
    private readonly config: string,
    paths: Readonly<Record<string, string>> = {},
  ) {
    if (argv.length === 0) throw new UserError('the reload command is empty', 'pass it as a JSON array, e.g. --reload-command \'["systemctl","reload","haproxy"]\'', ExitCode.usage);
    this.paths = paths;
  }

  plan(last: HaproxyApplied | undefined, desired: DesiredRender): ApplyPlan {
    return reloadPlan(last, desired);
  }

  async apply(plan: ApplyPlan): Promise<ApplyOutcome> {
    const t0 = performance.now();
    if (plan.action === 'none') return { action: 'none', ops: 0, reason: plan.reason, ms: 0 };
    const [bin, ...args] = this.argv;
    const r = await execa(bin!, args, { reject: false, stdin: 'ignore', all: true, timeout: 60_000, env: { ELASTIC_RENDER_FILE: this.config } });
    if (r.exitCode !== 0) {
      throw new UserError(`reload command failed (exit ${r.exitCode ?? r.signal ?? '?'}): ${printable(String(r.all ?? r.shortMessage ?? '').trim().split('\n')[0] ?? '', 200)}`, 'fix the command or the proxy; the previous config was restored', ExitCode.refused);
    }
    return { action: 'reload', ops: 0, reason: plan.reason, ms: Math.round(performance.now() - t0) };
  }
}

/**
 * --no-apply: the validated file is swapped in and nothing else happens, for hosts where another
 * tool (systemd, a config manager) reloads the proxy. Nothing is verified beyond validation.
 */
export class FileOnlyApplier implements Applier {
  constructor(
    readonly proxy: ProxyKind,
    readonly paths: Readonly<Record<string, string>> = {},
  ) {}

  plan(last: HaproxyApplied | undefined, desired: DesiredRender): ApplyPlan {
    return reloadPlan(last, desired);
  }

  async apply(plan: ApplyPlan): Promise<ApplyOutcome> {
    return { action: plan.action === 'none' ? 'none' : 'written', ops: 0, reason: `${plan.reason}; file written, not applied (--no-apply)`, ms: 0 };
  }
}
