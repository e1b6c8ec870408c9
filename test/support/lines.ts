import type { Readable } from 'node:stream';

/** Collect a child's output lines and wait for one that matches (bounded in time). */
export class LineReader {
  readonly lines: string[] = [];
  private waiters: Array<{ test: (l: string) => boolean; from: number; resolve: (l: string) => void }> = [];

  constructor(stream: Readable) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        for (const w of [...this.waiters]) {
          if (this.lines.length - 1 >= w.from && w.test(line)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    });
  }

  /** Wait for a line matching `test`, seen after line index `from` (default: any, including past ones). */
  next(test: (line: string) => boolean, what: string, timeoutMs = 15_000, from = 0): Promise<string> {
    const seen = this.lines.slice(from).find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; output so far:\n${this.lines.join('\n')}`)), timeoutMs);
      this.waiters.push({ test, from, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  }

  json<T = Record<string, unknown>>(test: (obj: T) => boolean, what: string, timeoutMs?: number, from = 0): Promise<T> {
    const parse = (l: string): T | null => {
      try {
        return JSON.parse(l) as T;
      } catch {
        return null;
      }
    };
    return this.next((l) => {
      const o = parse(l);
      return o !== null && test(o);
    }, what, timeoutMs, from).then((l) => JSON.parse(l) as T);
  }
}
