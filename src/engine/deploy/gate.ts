import { probe, type CheckSpec } from '../health/checker.js';
import type { DeployDocker, ImageFacts } from './docker-ops.js';
import type { HealthGate } from './spec.js';

/**
 * The health gate a new replica passes before it counts (and before an old one may go): it must
 * be healthy continuously for `minHealthyMs`, and get there within `deadlineMs` of its start.
 * A replica that exits, restarts, or is reported unhealthy by Docker fails at once.
 */
export type GateCheck = { kind: 'docker' } | { kind: 'http'; path: string; port: number } | { kind: 'tcp'; port: number } | { kind: 'running' };

export function resolveGate(gate: HealthGate, image: ImageFacts, port: number | undefined): GateCheck {
  const needPort = (what: string): number => {
    if (port === undefined) throw new Error(`${what} needs --port`);
    return port;
  };
  switch (gate.kind) {
    case 'cmd':
      return { kind: 'docker' };
    case 'http':
      return { kind: 'http', path: gate.path, port: needPort('--health-http') };
    case 'tcp':
      return { kind: 'tcp', port: needPort('--health-tcp') };
    case 'none':
      return { kind: 'running' };
    case 'auto':
      return image.hasHealthcheck ? { kind: 'docker' } : port !== undefined ? { kind: 'tcp', port } : { kind: 'running' };
  }
}

export function describeCheck(c: GateCheck): string {
  return c.kind === 'docker' ? 'Docker health check' : c.kind === 'http' ? `HTTP GET :${c.port}${c.path}` : c.kind === 'tcp' ? `TCP :${c.port}` : 'running';
}

export interface GateOptions {
  readonly check: GateCheck;
  readonly network?: string;
  readonly minHealthyMs: number;
  readonly deadlineMs: number;
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
  /** Called when the replica's gate state changes (progress display). */
  readonly onState?: (state: 'starting' | 'healthy', detail?: string) => void;
}

export type GateResult = { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly reason: string; readonly ms: number };

export async function waitGate(ops: DeployDocker, id: string, opts: GateOptions): Promise<GateResult> {
  const t0 = Date.now();
  const poll = opts.pollMs ?? 200;
  let healthySince: number | null = null;
  let last = 'not checked yet';
  for (;;) {
    if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted');
    const now = Date.now();
    const d = await ops.inspect(id, opts.network);
    if (!d) return { ok: false, reason: 'the container disappeared', ms: now - t0 };
    if (d.restarts > 0 || (d.state !== 'running' && d.state !== 'created')) {
      return { ok: false, reason: d.state === 'running' || d.state === 'restarting' ? `restarted ${d.restarts} time(s) (exit code ${d.exitCode})` : `exited with code ${d.exitCode}`, ms: now - t0 };
    }
    let up = false;
    if (d.state === 'running') {
      switch (opts.check.kind) {
        case 'docker':
          if (d.health === 'unhealthy') return { ok: false, reason: `unhealthy${d.lastHealthOutput ? `: ${d.lastHealthOutput}` : ''}`, ms: now - t0 };
          up = d.health === 'healthy';
          last = `health ${d.health}`;
          break;
        case 'http':
        case 'tcp':
          ({ up, last } = d.address ? await probeOnce(d.address, opts.check) : { up: false, last: 'no address' });
          break;
        case 'running':
          up = true;
      }
    }
    if (up) {
      if (healthySince === null) {
        healthySince = now;
        opts.onState?.('healthy');
      }
      if (now - healthySince >= opts.minHealthyMs) return { ok: true, ms: now - t0 };
    } else if (healthySince !== null) {
      healthySince = null;
      opts.onState?.('starting', last);
    }
    if (now - t0 >= opts.deadlineMs) {
      return { ok: false, reason: `health deadline passed: not healthy for ${opts.minHealthyMs} ms within ${opts.deadlineMs} ms (${last})`, ms: now - t0 };
    }
    await new Promise((r) => setTimeout(r, poll));
  }
}

async function probeOnce(address: string, check: { kind: 'http'; path: string; port: number } | { kind: 'tcp'; port: number }): Promise<{ up: boolean; last: string }> {
  const spec: CheckSpec = { kind: check.kind, path: check.kind === 'http' ? check.path : '/', intervalMs: 1000, timeoutMs: 2000, rise: 1, fall: 1 };
  const up = await probe({ address, port: check.port }, spec);
  return { up, last: `${check.kind.toUpperCase()} ${up ? 'ok' : 'failing'}` };
}
