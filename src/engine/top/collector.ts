import { watch, type FSWatcher } from 'node:fs';
import { listStatusSockets, requestStatus, streamStatus, type Snapshot } from '../runtime/status.js';
import { runDir } from '../runtime/paths.js';
import { describeError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import { adaptSnapshot } from './adapters.js';
import { dockerSample, NOTHING_CONFIGURED, type DockerFallback } from './docker.js';
import type { TopStore } from './store.js';

/**
 * Feeds a TopStore from every status socket in the registry directory: one streaming connection
 * per socket, reconnecting with backoff; the directory is watched (and rescanned, since fs.watch
 * can miss events) so sockets that appear are followed and sockets that vanish are forgotten.
 * When no socket is there, local Docker containers are shown instead (the fallback).
 */
export interface CollectorOptions {
  dir?: string;
  /** Stream interval asked of each socket (the refresh interval). */
  intervalMs: number;
  rescanMs?: number;
  docker?: DockerFallback | null;
  logger?: Logger;
  now?: () => number;
}

interface Follow {
  id: string;
  path: string;
  abort: AbortController;
}

export class Collector {
  private readonly follows = new Map<string, Follow>();
  private readonly live = new Set<string>();
  private readonly dir: string;
  private readonly now: () => number;
  private dockerTimer: NodeJS.Timeout | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private watcher: FSWatcher | null = null;
  private stopped = false;
  private scanning: Promise<void> | null = null;

  constructor(
    private readonly store: TopStore,
    private readonly opts: CollectorOptions,
  ) {
    this.dir = opts.dir ?? runDir();
    this.now = opts.now ?? Date.now;
  }

  /** Where the sockets are, for messages. */
  get runDir(): string {
    return this.dir;
  }

  /** The socket path of a source, for actions. */
  pathOf(sourceId: string): string | undefined {
    return this.follows.get(sourceId)?.path;
  }

  async start(signal: AbortSignal): Promise<void> {
    signal.addEventListener('abort', () => this.stop(), { once: true });
    await this.rescan();
    this.rescanTimer = setInterval(() => void this.rescan(), this.opts.rescanMs ?? 2000);
    try {
      this.watcher = watch(this.dir, () => void this.rescan());
      this.watcher.on('error', () => {});
    } catch {
      // The directory may not exist yet: the periodic rescan finds sockets when it does.
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    if (this.dockerTimer) clearTimeout(this.dockerTimer);
    this.watcher?.close();
    for (const f of this.follows.values()) f.abort.abort();
    this.follows.clear();
  }

  /** One request to a source's socket: `{"op":"action",...}` (drain, undrain, scale). */
  async action(sourceId: string, action: string, args: Record<string, unknown>, timeoutMs = 35_000): Promise<Record<string, unknown>> {
    const path = this.pathOf(sourceId);
    if (!path) throw new Error(`${sourceId} is not connected`);
    return requestStatus<Record<string, unknown>>(path, { op: 'action', action, args }, timeoutMs);
  }

  private rescan(): Promise<void> {
    // One scan at a time; a burst of fs.watch events makes one more scan, not many.
    if (this.scanning) return this.scanning;
    this.scanning = this.scanOnce().finally(() => (this.scanning = null));
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    if (this.stopped) return;
    const found = await listStatusSockets(this.dir);
    if (this.stopped) return; // stopped while listing: start nothing new
    const seen = new Set<string>();
    for (const s of found) {
      const id = `${s.kind}.${s.name}`;
      seen.add(id);
      if (!this.follows.has(id)) {
        const f: Follow = { id, path: s.path, abort: new AbortController() };
        this.follows.set(id, f);
        void this.follow(f);
      }
    }
    for (const [id, f] of this.follows) {
      if (seen.has(id)) continue;
      f.abort.abort();
      this.follows.delete(id);
      this.live.delete(id);
      this.store.lose(id, 'stopped (socket removed)', this.now(), true);
    }
    this.updateFallback();
  }

  private async follow(f: Follow): Promise<void> {
    let backoff = 250;
    while (!f.abort.signal.aborted && !this.stopped) {
      let got = false;
      try {
        for await (const snap of streamStatus(f.path, this.opts.intervalMs, f.abort.signal)) {
          got = true;
          backoff = 250;
          this.store.ingest(adaptSnapshot(snap, this.now()), this.now());
          if (!this.live.has(f.id)) {
            this.live.add(f.id);
            this.updateFallback();
          }
        }
        if (!f.abort.signal.aborted) this.store.lose(f.id, 'closed its status stream', this.now());
      } catch (err) {
        if (!f.abort.signal.aborted) this.store.lose(f.id, `not answering: ${describeError(err)}`, this.now());
      }
      if (this.live.delete(f.id)) this.updateFallback();
      if (f.abort.signal.aborted) break;
      if (!got) backoff = Math.min(backoff * 2, 5000);
      await sleep(backoff, f.abort.signal);
    }
  }

  /** Docker containers while no socket is live; none once one is. */
  private updateFallback(): void {
    const wanted = !this.stopped && Boolean(this.opts.docker) && this.live.size === 0;
    // Sockets that exist but have not answered yet get a moment before containers are shown.
    if (wanted && !this.dockerTimer) this.pollDocker(this.follows.size === 0 ? 0 : 1500);
    if (!wanted && this.dockerTimer) {
      clearTimeout(this.dockerTimer);
      this.dockerTimer = null;
      this.store.lose('docker.local', 'hidden: status sockets are present', this.now(), true);
      this.store.setNotice(null);
    }
    if (!this.opts.docker) this.store.setNotice(this.live.size === 0 ? `${NOTHING_CONFIGURED} (no status socket in ${this.dir})` : null);
  }

  private pollDocker(delayMs: number): void {
    const timer: NodeJS.Timeout = setTimeout(async () => {
      const docker = this.opts.docker;
      if (!docker || this.dockerTimer !== timer) return;
      try {
        const sample = await dockerSample(docker, this.now());
        if (this.dockerTimer !== timer) return; // sockets came while we listed
        this.store.ingest(sample, this.now());
        this.store.setNotice(`${NOTHING_CONFIGURED}; showing local containers`);
      } catch (err) {
        if (this.dockerTimer !== timer) return;
        this.store.setNotice(`${NOTHING_CONFIGURED}; Docker: ${describeError(err)}`);
        (this.opts.logger ?? nullLogger).debug('docker fallback failed', { error: describeError(err) });
      }
      this.pollDocker(Math.max(2000, this.opts.intervalMs));
    }, delayMs);
    timer.unref();
    this.dockerTimer = timer;
  }
}

/** One round over every socket (and Docker when there is none), for `--once`. */
export async function collectRound(store: TopStore, opts: { dir?: string; docker?: DockerFallback | null; now?: () => number }): Promise<number> {
  const now = opts.now ?? Date.now;
  const dir = opts.dir ?? runDir();
  const found = await listStatusSockets(dir);
  const results = await Promise.allSettled(found.map((s) => requestStatus<Snapshot>(s.path, { op: 'snapshot' }, 3000)));
  let live = 0;
  results.forEach((r, i) => {
    const s = found[i]!;
    if (r.status === 'fulfilled') {
      live++;
      store.ingest(adaptSnapshot(r.value, now()), now());
    } else store.lose(`${s.kind}.${s.name}`, `not answering: ${describeError(r.reason)}`, now());
  });
  if (live === 0) {
    if (opts.docker) {
      try {
        store.ingest(await dockerSample(opts.docker, now()), now());
        store.setNotice(`${NOTHING_CONFIGURED}; showing local containers`);
      } catch (err) {
        store.setNotice(`${NOTHING_CONFIGURED}; Docker: ${describeError(err)}`);
      }
    } else store.setNotice(`${NOTHING_CONFIGURED} (no status socket in ${dir})`);
  }
  return live;
}

/** Resolves after `ms`, or at once when the signal aborts (never rejects). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
