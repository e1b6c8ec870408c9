import { execa } from 'execa';
import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';
import { reloadPlan, type Applier, type ApplyOutcome, type ApplyPlan, type DesiredRender } from '../applier.js';
import type { HaproxyApplied } from '../haproxy/plan.js';

/**
 * Varnish: load the new VCL under a fresh name, wait until its probes found a healthy backend
 * per service, switch to it (`vcl.load` + `vcl.use` through varnishadm), check it is the active
 * one, and discard our older VCLs except the previous.
 * render does not start varnishd; it attaches to one by its -n working directory.
 */
export interface VarnishApplierOptions {
  config: string;
  /** varnishd's -n (working directory or instance name). */
  instance?: string;
  bin?: string;
}

export function parseVclList(text: string): Array<{ status: string; name: string }> {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4 && /^(active|available)$/.test(f[0]!))
    .map((f) => ({ status: f[0]!, name: f.at(-1)! }));
}

/** Rows of `varnishadm backend.list`: name (without the VCL prefix), health, probe column "good/n". */
export function parseBackendList(text: string): Array<{ name: string; healthy: boolean; good: number; of: number }> {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4 && /^(healthy|sick)$/.test(f[3]!) && /^\d+\/\d+$/.test(f[2]!))
    .map((f) => {
      const [good, of] = f[2]!.split('/').map(Number) as [number, number];
      return { name: f[0]!.slice(f[0]!.indexOf('.') + 1), healthy: f[3] === 'healthy', good, of };
    });
}

/**
 * Whether a freshly loaded VCL can take traffic: every director (`d_*`, one per service in the
 * built-in template) has a healthy backend (or none at all: an empty service), or, for a VCL
 * without such directors, every backend is healthy. A new VCL's probed backends start sick until
 * their first probe answers: switching before that answers 503 "no backend".
 */
export function vclReady(rows: ReturnType<typeof parseBackendList>): boolean {
  const directors = rows.filter((r) => r.name.startsWith('d_'));
  return directors.length > 0 ? directors.every((d) => d.healthy || d.of === 0) : rows.every((r) => r.healthy);
}

/** How long a new VCL may wait for its probes before it is used anyway (probe timeout 1 s + margin). */
export const PROBE_WAIT_MS = 2500;

export class VarnishApplier implements Applier {
  readonly proxy = 'varnish' as const;
  readonly paths = {};
  private seq = 0;

  constructor(private readonly opts: VarnishApplierOptions) {}

  plan(last: HaproxyApplied | undefined, desired: DesiredRender): ApplyPlan {
    return reloadPlan(last, desired);
  }

  private async adm(...args: string[]): Promise<string> {
    const base = this.opts.instance ? ['-n', this.opts.instance] : [];
    const r = await execa(this.opts.bin ?? 'varnishadm', [...base, ...args], { reject: false, stdin: 'ignore', all: true, timeout: 30_000 });
    if (r.exitCode !== 0) {
      throw new UserError(`varnishadm ${args[0]} failed: ${printable(String(r.all ?? r.shortMessage ?? '').trim().split('\n').slice(0, 3).join(' '), 240)}`, 'is varnishd running with this -n (--varnish-name)?', ExitCode.refused);
    }
    return String(r.all ?? '');
  }

  /** Wait (at most PROBE_WAIT_MS) until the loaded VCL `name` is ready (vclReady); a failed backend.list does not hold the switch. */
  private async probed(name: string): Promise<void> {
    const end = Date.now() + PROBE_WAIT_MS;
    while (!vclReady(parseBackendList(await this.adm('backend.list', `${name}.*`).catch(() => ''))) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  }

  async alive(): Promise<boolean> {
    return this.adm('ping').then(() => true, () => false);
  }

  async apply(plan: ApplyPlan, desired: DesiredRender): Promise<ApplyOutcome> {
    const t0 = performance.now();
    if (plan.action === 'none') return { action: 'none', ops: 0, reason: plan.reason, ms: 0 };
    const name = `elastic_${desired.configHash}_${Date.now().toString(36)}${this.seq++}`;
    await this.adm('vcl.load', name, this.opts.config);
    await this.probed(name);
    await this.adm('vcl.use', name);
    const list = parseVclList(await this.adm('vcl.list'));
    if (list.find((v) => v.status === 'active')?.name !== name) throw new UserError(`varnish did not switch to ${name}`, 'check varnishadm vcl.list', ExitCode.refused);
    const ours = list.filter((v) => v.status === 'available' && v.name.startsWith('elastic_'));
    for (const old of ours.slice(0, -1)) await this.adm('vcl.discard', old.name).catch(() => '');
    return { action: 'reload', ops: 0, reason: plan.reason, ms: Math.round(performance.now() - t0) };
  }
}
