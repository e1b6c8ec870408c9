import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import type { Provider, ChangeHint } from '../provider.js';
import { sortBackends, type Backend, type BackendSet } from '../../model/backend.js';
import { ExitCode, UserError } from '../../errors.js';
import { nullLogger, type Logger } from '../../runtime/logger.js';
import { createDocker, dockerError, type DockerTarget } from './client.js';
import { imageMatcher, parseContainer, type ParseResult } from './parse.js';
import type { DockerSelector } from '../selector.js';
import { withoutGating } from '../../deploy/readiness.js';
import { eventAction, eventContainerId, isStopKill, type DockerEvent } from './stopping.js';

/** Docker events that can change the backend set. Anything else is ignored. */
// `update`: deploy touches a replica when it passes its health gate (deploy/readiness.ts).
export const CONTAINER_ACTIONS = ['start', 'die', 'stop', 'kill', 'pause', 'unpause', 'health_status', 'destroy', 'rename', 'restart', 'update'];
export const NETWORK_ACTIONS = ['connect', 'disconnect'];

export interface DockerProviderOptions {
  selector: DockerSelector;
  host?: string;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  /**
   * A container being stopped (stopping.ts) is left out of the list (default), or, with true,
   * listed with state `draining` (map-image keeps its live flows while it takes it out of DNAT).
   */
  keepStopping?: boolean;
}

/** How long a container whose `die` event came stays out of lists unless it starts again. */
const DEAD_MS = 5000;

export class DockerProvider implements Provider {
  readonly name = 'docker';
  readonly resyncMs = 30_000;
  readonly docker: Docker;
  /** The event stream's client: no request timeout (client.ts). */
  private readonly events: Docker;
  readonly target: DockerTarget;
  private readonly log: Logger;
  private readonly started = new Map<string, string>();
  /** Each container's stop signal (Config.StopSignal; '' = SIGTERM), read with its start time. */
  private readonly stopSignals = new Map<string, string>();
  /** Containers a stop was sent to (full ids): no new connections, whatever Docker still says. */
  private readonly stopping = new Set<string>();
  /**
   * Containers whose `die` event came (full ids): never listed, until they `start` again. A list
   * made right after `die` still shows the container running (dockerd emits the event before its
   * list view has the exit; measured: 6 lists of 6 within 15 ms), and no later event follows for
   * a container that is not removed: without this its address stayed until the 30 s resync.
   * Kept DEAD_MS at most: a `start` missed while the event stream was down must not hide a
   * running container for good (by then Docker's list has long caught up with the exit).
   */
  private readonly dead = new Map<string, number>();
  /** Containers skipped at the last list, with why (shown by `discover`, logged in watch). */
  skipped: Array<{ id: string; reason: string; ambiguous?: boolean }> = [];

  constructor(private readonly opts: DockerProviderOptions) {
    const { docker, target } = createDocker(opts.host, opts.env);
    this.docker = docker;
    this.events = createDocker(opts.host, opts.env, { stream: true }).docker;
    this.target = target;
    this.log = opts.logger ?? nullLogger;
  }

  async list(): Promise<BackendSet> {
    const { selector } = this.opts;
    try {
      const filters: Record<string, string[]> = { status: ['running'] };
      const byLabel = [...selector.labels.map((l) => `${l.key}=${l.value}`), ...(selector.labelKeys ?? [])];
      if (byLabel.length) filters.label = byLabel;
      const infos = await this.docker.listContainers({ all: false, filters: JSON.stringify(filters) });
      const image = imageMatcher(selector);
      const results: ParseResult[] = [];
      for (const info of infos) {
        const r = parseContainer(info, selector, image, this.started.get(info.Id));
        if (r) results.push(r);
      }
      await this.fillStartTimes(results, infos);
      const found: Backend[] = [];
      const skipped: typeof this.skipped = [];
      for (const r of results) {
        if (!r.ok) {
          skipped.push({ id: r.id, reason: r.reason, ambiguous: r.ambiguous });
          continue;
        }
        const id = fullId(infos, r.backend.id);
        const died = this.dead.get(id);
        if (died !== undefined && Date.now() - died < DEAD_MS) continue;
        const backend = { ...r.backend, since: this.started.get(id) ?? r.backend.since };
        if (!this.stopping.has(id)) found.push(backend);
        else if (this.opts.keepStopping) found.push({ ...backend, state: 'draining' });
      }
      // Deployed replicas are served only once their deploy's health gate admitted them.
      const { backends, skipped: gating } = await withoutGating(found);
      skipped.push(...gating);
      for (const s of skipped) {
        if (!this.skipped.some((p) => p.id === s.id && p.reason === s.reason)) this.log.warn(`skipping container ${s.id}: ${s.reason}`);
      }
      this.skipped = skipped;
      // Forget start times of containers that are gone (bounded memory on busy hosts).
      const live = new Set(infos.map((i) => i.Id));
      for (const id of this.started.keys()) if (!live.has(id)) this.started.delete(id);
      for (const id of this.stopSignals.keys()) if (!live.has(id)) this.stopSignals.delete(id);
      for (const id of this.stopping) if (!live.has(id)) this.stopping.delete(id);
      for (const [id, at] of this.dead) if (!live.has(id) || Date.now() - at >= DEAD_MS) this.dead.delete(id);
      return sortBackends(backends);
    } catch (err) {
      throw dockerError(err, this.target);
    }
  }

  /** Inspect only containers we have not seen, for their real start time. */
  private async fillStartTimes(results: ParseResult[], infos: Docker.ContainerInfo[]): Promise<void> {
    const wanted = results.filter((r) => r.ok).map((r) => fullId(infos, (r as { backend: Backend }).backend.id));
    const missing = wanted.filter((id) => id && !this.started.has(id));
    await Promise.all(
      missing.map(async (id) => {
        try {
          const c = await this.docker.getContainer(id).inspect();
          this.started.set(id, new Date(c.State.StartedAt).toISOString());
          this.stopSignals.set(id, stopSignalOf(c));
        } catch {
          /* gone meanwhile: the next event re-lists */
        }
      }),
    );
  }

  async *changes(signal: AbortSignal): AsyncGenerator<ChangeHint> {
    let stream: Readable;
    try {
      stream = (await this.events.getEvents({
        filters: JSON.stringify({
          type: ['container', 'network'],
          event: [...CONTAINER_ACTIONS, ...NETWORK_ACTIONS],
        }),
      })) as unknown as Readable;
    } catch (err) {
      throw dockerError(err, this.target);
    }
    // A TCP daemon that vanishes without a FIN is still noticed (a unix socket has no keepalive).
    (stream as Readable & { socket?: { setKeepAlive?: (on: boolean, ms: number) => void } }).socket?.setKeepAlive?.(true, 10_000);
    const onAbort = () => stream.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      yield { reason: 'connected' };
      let buf = '';
      for await (const chunk of stream) {
        buf += chunk.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let action = 'event';
          try {
            const ev = JSON.parse(line) as DockerEvent;
            action = eventAction(ev);
            this.noteStopping(ev);
          } catch {
            /* a partial or odd line still means "something changed" */
          }
          yield { reason: `event:${action}` };
        }
        if (buf.length > 1 << 20) buf = '';
      }
      if (!signal.aborted) throw new UserError('Docker event stream closed', 'dockerd restarted or stopped', ExitCode.unavailable);
    } catch (err) {
      if (signal.aborted) return;
      throw dockerError(err, this.target);
    } finally {
      signal.removeEventListener('abort', onAbort);
      stream.destroy();
    }
  }

  /** Record a stop as it starts, and a death (before the hint, so the re-list it causes leaves it out). */
  private noteStopping(ev: DockerEvent): void {
    const id = eventContainerId(ev);
    if (!id) return;
    const action = eventAction(ev);
    if (action === 'start' || action === 'destroy') {
      this.stopping.delete(id);
      this.dead.delete(id);
    } else if (action === 'die') this.dead.set(id, Date.now());
    // Only containers we serve (inspected at list time, with their stop signal): no Docker call
    // here, so a slow inspect of someone else's container never holds the event stream up.
    const stopSignal = this.stopSignals.get(id);
    if (action !== 'kill' || stopSignal === undefined || this.stopping.has(id)) return;
    if (isStopKill(ev, stopSignal)) {
      this.stopping.add(id);
      this.log.info(`container ${id.slice(0, 12)} is being stopped: no new connections to it`, { signal: ev.Actor?.Attributes?.signal });
    }
  }

  /** For one-shot use: fail fast with a clear message when dockerd is not there. */
  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (err) {
      throw dockerError(err, this.target);
    }
  }
}

/** Config.StopSignal (dockerode's types leave it out); '' = SIGTERM. */
function stopSignalOf(c: Docker.ContainerInspectInfo): string {
  const v = (c.Config as { StopSignal?: unknown }).StopSignal;
  return typeof v === 'string' ? v : '';
}

function fullId(infos: Docker.ContainerInfo[], backendId: string): string {
  const short = backendId.slice('docker:'.length);
  return infos.find((i) => i.Id.startsWith(short))?.Id ?? '';
}
