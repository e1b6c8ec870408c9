import { readFile, stat } from 'node:fs/promises';
import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { ChangeHint, Provider } from '../provider.js';
import type { BackendSet } from '../../model/backend.js';
import { ExitCode, UserError } from '../../errors.js';
import { backendsFromFlags, parseStaticFile } from './parse.js';
import { untilAborted, Wakeup } from '../wake.js';

export interface StaticProviderOptions {
  backends?: readonly string[];
  file?: string;
  service: string;
}

/**
 * Static backends from flags and/or a file. The file is watched through its directory, so an
 * editor's or a config manager's atomic rename is seen; a poll every 5 s backs the watch up.
 */
export class StaticProvider implements Provider {
  readonly name = 'static';
  readonly resyncMs = 5_000;
  private readonly fromFlags: BackendSet;

  constructor(private readonly opts: StaticProviderOptions) {
    this.fromFlags = backendsFromFlags(opts.backends ?? [], opts.service);
  }

  async list(): Promise<BackendSet> {
    if (!this.opts.file) return this.fromFlags;
    let text: string;
    try {
      // Not a device or FIFO (/dev/zero would be read forever), not a huge file.
      const info = await stat(this.opts.file);
      if (!info.isFile()) throw Object.assign(new Error(), { code: 'not a regular file' });
      if (info.size > 16 << 20) throw Object.assign(new Error(), { code: 'larger than 16 MiB' });
      text = await readFile(this.opts.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new UserError(
        code === 'ENOENT' ? `static backends file ${this.opts.file} does not exist` : `cannot read ${this.opts.file}: ${code}`,
        'check the --file path (YAML or JSON with a "backends:" list)',
        ExitCode.config,
      );
    }
    const fromFile = parseStaticFile(text, this.opts.file, this.opts.service);
    if (this.fromFlags.length === 0) return fromFile;
    const merged = new Map([...this.fromFlags, ...fromFile].map((b) => [b.id, b]));
    return [...merged.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async *changes(signal: AbortSignal): AsyncGenerator<ChangeHint> {
    if (!this.opts.file) {
      // Flags only: nothing ever changes, but the stream lasts (one that ended was "lost" and
      // reconnected, logging a warning, forever).
      yield { reason: 'connected' };
      await untilAborted(signal);
      return;
    }
    const file = resolve(this.opts.file);
    const queue: ChangeHint[] = [];
    const wakeup = new Wakeup();
    const watcher = watch(dirname(file), { signal }, (_event, name) => {
      if (name === null || name === basename(file)) {
        queue.push({ reason: 'file' });
        wakeup.wake();
      }
    });
    watcher.on('error', () => {});
    yield { reason: 'connected' };
    try {
      while (!signal.aborted) {
        if (queue.length === 0) await wakeup.wait(signal);
        while (queue.length) yield queue.shift()!;
      }
    } finally {
      watcher.close();
    }
  }
}
