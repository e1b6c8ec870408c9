import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { describeError } from '../../errors.js';
import { nullLogger, type Logger } from '../../runtime/logger.js';
import type { Applier } from '../applier.js';
import { HaproxyApplier } from '../haproxy/applier.js';
import { CertStore, type CertSet, type CertSources } from './certs.js';
import { setSslCert } from './haproxy-certs.js';

/**
 * The certificates of one render, kept current before every pass: files are re-read and
 * validated, and a file whose content changed while the set of certificates stayed the same is
 * put in force without a reload (HAProxy runtime API; on any refusal a seamless reload instead).
 * A new or removed certificate changes the crt-list, printed in the config as a hash: the pass
 * then reloads. nginx has the content in that hash too: every change is a graceful reload.
 */
export class TlsCerts {
  readonly store: CertStore;
  current: CertSet | undefined;
  private readonly log: Logger;
  /** Certificates put in force through the runtime API, and fallback reloads (status, tests). */
  readonly counters = { runtimeUpdates: 0, fallbackReloads: 0 };

  constructor(sources: CertSources, dir: string, logger?: Logger, write = true) {
    this.log = logger ?? nullLogger;
    this.store = new CertStore(sources, dir, this.log, write);
  }

  /** Copies written but not yet in force (the runtime update and its fallback reload failed): retried next pass. */
  private readonly pending = new Set<string>();

  /** Before a pass: sync the copies, and push changed files into a running HAProxy. */
  async prepare(applier: Applier): Promise<void> {
    const set = await this.store.sync();
    this.current = set;
    const todo = set.entries.filter((e) => set.changed.includes(e) || this.pending.has(e.key));
    if (!this.store.write || set.listChanged || todo.length === 0 || !(applier instanceof HaproxyApplier)) return this.pending.clear();
    if (!(await applier.alive())) return this.pending.clear(); // the pass starts it from the files
    for (const e of todo) this.pending.add(e.key);
    try {
      for (const e of todo) {
        await setSslCert(applier.paths.statsSocket!, e);
        this.counters.runtimeUpdates++;
        this.log.info(`certificate ${e.source} in force without a reload`, { subject: e.info.subject, notAfter: e.info.notAfter });
      }
    } catch (err) {
      this.log.warn('certificate update through the runtime API failed; seamless reload instead', { error: describeError(err) });
      await applier.process.reload();
      this.counters.fallbackReloads++;
    }
    this.pending.clear();
  }
}

/** Call `onChange` when a certificate file or directory changes (50 ms debounce: one change often comes as several events). */
export function watchCertFiles(sources: CertSources, onChange: () => void, signal: AbortSignal, log: Logger = nullLogger): void {
  const dirs = new Set<string>();
  if (sources.certDir) dirs.add(sources.certDir);
  if (sources.defaultCert) dirs.add(dirname(sources.defaultCert));
  for (const s of sources.services) dirs.add(dirname(s.file));
  let timer: NodeJS.Timeout | null = null;
  const poke = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, 50);
  };
  const watchers: FSWatcher[] = [];
  for (const d of dirs) {
    try {
      watchers.push(watch(d, { persistent: false }, poke));
    } catch (err) {
      log.warn(`cannot watch ${d} for certificate changes; they are picked up at the periodic resync`, { error: describeError(err) });
    }
  }
  signal.addEventListener('abort', () => {
    if (timer) clearTimeout(timer);
    for (const w of watchers) w.close();
  }, { once: true });
}
