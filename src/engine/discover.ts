import type { Provider } from './discovery/provider.js';
import { DockerProvider } from './discovery/docker/provider.js';
import { StaticProvider } from './discovery/static/provider.js';
import { CompositeProvider } from './discovery/composite.js';
import { watchBackends, type WatchUpdate } from './discovery/watch.js';
import type { DockerSelector } from './discovery/selector.js';
import { diffBackends, type BackendSet } from './model/backend.js';
import { HealthChecker, type CheckSpec } from './health/checker.js';
import { describeError, ExitCode, UserError } from './errors.js';
import { StatusServer } from './runtime/status.js';
import { nullLogger, type Logger } from './runtime/logger.js';

/**
 * `discover` as an engine function, and the one way every other command builds its providers
 * from selectors: docker, ec2, static, or several at once.
 */
export interface DiscoverOptions {
  /** keepStopping: list containers being stopped as `draining` instead of leaving them out (provider.ts). */
  docker?: { selector: DockerSelector; host?: string; keepStopping?: boolean };
  ec2?: {
    tags: { key: string; value: string }[];
    port: number;
    addressType: 'private' | 'public';
    service: string;
    region?: string;
    profile?: string;
    endpoint?: string;
    intervalMs?: number;
  };
  static?: { backends: string[]; file?: string; service: string };
  check?: CheckSpec;
  includeUnhealthy?: boolean;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

export interface DiscoverResult {
  /** Schema version of this JSON shape (documented in README "JSON output"). */
  readonly v: 1;
  readonly backends: BackendSet;
  readonly skipped: ReadonlyArray<{ id: string; reason: string }>;
}

/** Providers are built from options; the AWS SDK is loaded only when EC2 is asked for (start-up time). */
export async function buildProvider(opts: DiscoverOptions): Promise<Provider> {
  const log = opts.logger ?? nullLogger;
  const members: Provider[] = [];
  if (opts.docker) members.push(new DockerProvider({ selector: opts.docker.selector, host: opts.docker.host, keepStopping: opts.docker.keepStopping, logger: log.child('docker'), env: opts.env }));
  if (opts.ec2) {
    const { tags, port, addressType, service, ...client } = opts.ec2;
    const { Ec2Provider } = await import('./discovery/ec2/provider.js');
    members.push(new Ec2Provider({ selector: { tags, port, addressType, service }, ...client, logger: log.child('ec2') }));
  }
  if (opts.static) members.push(new StaticProvider(opts.static));
  if (members.length === 0) throw new UserError('nothing to discover from', 'select Docker containers (--image/--label/--name), EC2 (--tag), or static backends (--backend/--file)', ExitCode.usage);
  return members.length === 1 ? members[0]! : new CompositeProvider(members);
}

/** Providers that report what they left out (docker, ec2), with why. */
function skippedOf(p: Provider): Array<{ id: string; reason: string; ambiguous?: boolean }> {
  const members = p instanceof CompositeProvider ? p.members : [p];
  return members.flatMap((m) => (m as { skipped?: Array<{ id: string; reason: string; ambiguous?: boolean }> }).skipped ?? []);
}

/** One listing. Containers we cannot place (several networks, several ports) are an error here. */
export async function discoverOnce(opts: DiscoverOptions): Promise<DiscoverResult> {
  const provider = await buildProvider(opts);
  try {
    let backends = await provider.list();
    const skipped = skippedOf(provider);
    const ambiguous = skipped.filter((s) => s.ambiguous);
    if (ambiguous.length > 0) {
      const first = ambiguous[0]!;
      throw new UserError(
        `container ${first.id} ${first.reason.replace(/; pass (--\w+)$/, '')}${ambiguous.length > 1 ? ` (and ${ambiguous.length - 1} more)` : ''}`,
        `pass ${/--\w+/.exec(first.reason)?.[0] ?? '--network'} to choose`,
        ExitCode.usage,
      );
    }
    if (opts.check) {
      const checker = new HealthChecker(opts.check, () => {});
      backends = await checker.checkOnce(backends);
      if (!opts.includeUnhealthy) backends = backends.filter((b) => b.health === 'healthy');
    }
    return { v: 1, backends, skipped: skipped.map(({ id, reason }) => ({ id, reason })) };
  } finally {
    await provider.close?.();
  }
}

/**
 * The live form: discovery updates, with active health checks applied when asked for. Yields the
 * set to serve and what changed since the last yield; the first update carries every backend as
 * `added`.
 */
export async function* discoverWatch(opts: DiscoverOptions, signal: AbortSignal): AsyncGenerator<WatchUpdate> {
  const provider = await buildProvider(opts);
  const log = opts.logger ?? nullLogger;
  try {
    if (!opts.check) {
      yield* watchBackends(provider, { signal, logger: log });
      return;
    }
    // Merge two sources of change: discovery and health transitions.
    let wake: (() => void) | null = null;
    let healthDirty = false;
    const checker = new HealthChecker(opts.check, () => {
      healthDirty = true;
      wake?.();
    });
    const updates = watchBackends(provider, { signal, logger: log });
    let discovered: BackendSet = [];
    let served: BackendSet = [];
    let first = true;
    let pending = updates.next();
    try {
      while (!signal.aborted) {
        // A health transition seen while we were busy (yielding) is not lost: healthDirty holds it.
        let which: 'discovery' | 'health' = 'health';
        if (!healthDirty) {
          const woke = new Promise<'health'>((r) => (wake = () => r('health')));
          which = await Promise.race([pending.then(() => 'discovery' as const), woke]);
          wake = null;
        }
        let reason = 'health';
        if (which === 'discovery') {
          const r = await pending;
          if (r.done) break;
          discovered = r.value.backends;
          reason = r.value.reason;
          checker.setTargets(discovered);
          pending = updates.next();
        } else healthDirty = false;
        const next = checker.apply(discovered, opts.includeUnhealthy);
        const changes = diffBackends(served, next);
        if (first || changes.length > 0) {
          first = false;
          served = next;
          yield { backends: next, changes, reason };
        }
      }
    } finally {
      checker.stop();
      await updates.return(undefined);
    }
  } finally {
    await provider.close?.();
  }
}

/**
 * The status socket of `discover --watch` (kind `discover`, name `<service>-<pid>`): the current
 * set per service, and added/removed events. A socket that cannot be served (no run dir) is
 * logged and the watch goes on without it.
 */
export async function serveDiscoverStatus(opts: DiscoverOptions, logger: Logger = nullLogger) {
  const service = opts.docker?.selector.service ?? opts.ec2?.service ?? opts.static?.service ?? 'default';
  let current: BackendSet = [];
  const server = new StatusServer({
    kind: 'discover',
    name: `${service}-${process.pid}`,
    config: { sources: [opts.docker && 'docker', opts.ec2 && 'ec2', opts.static && 'static'].filter(Boolean), check: opts.check?.kind ?? null },
    services: () => {
      const out: Record<string, { backends: BackendSet }> = {};
      for (const b of current) (out[b.service] ??= { backends: [] }).backends = [...out[b.service]!.backends, b];
      return out;
    },
  });
  let serving = false;
  try {
    await server.listen();
    serving = true;
  } catch (err) {
    logger.warn('status socket not served', { error: describeError(err) });
  }
  return {
    update(u: WatchUpdate) {
      current = u.backends;
      if (!serving) return;
      for (const c of u.changes) server.event(c.type, `${c.backend.id} ${c.backend.name} ${c.backend.address}:${c.backend.port}`, c.backend.service);
      server.notify();
    },
    close: () => (serving ? server.close() : Promise.resolve()),
  };
}
