import { execa, type ResultPromise } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ToolEnv } from './exec.js';

/**
 * One long-lived `nft -j -i` that runs this process's nft transactions and reads its own table.
 *
 * Why not `nft -f` per transaction: when a transaction replaced or deleted anything (a rule, a set
 * element), the kernel frees the old objects after an RCU grace period, and every nfnetlink socket
 * that closes meanwhile waits for that release (`nft_rcv_nl_event` flushes the destroy work). The
 * `nft -f` process closes its socket on exit, so each such sync waited 10-20 ms on this VM after its
 * commit was already in force, plus a process spawn. A session keeps its socket open and its
 * cache warm (nft re-reads the kernel only when the ruleset generation moved); a transaction costs
 * under a millisecond. See docs/bench/map-image.md.
 *
 * Safety is the same as `nft -f`: the transaction is a complete file, written before nft is told
 * about it, and passed as `include "<file>"` on one short line (a pipe write under PIPE_BUF is
 * atomic): an elastic killed mid-way never makes nft commit a shorter batch. An included file is
 * one batch: all of it commits or none.
 *
 * Framing: after each include we ask for `list table ip <sentinel>`, a table that cannot exist;
 * its error on stderr marks the end of the transaction's output, and anything before it is the
 * transaction's own error text (empty on success).
 *
 * A build of nft without its interactive CLI, or a session that does not answer its first probe,
 * makes `apply` return false: the caller uses `nft -f` from then on.
 */
export class NftSession {
  private child: ResultPromise<{ buffer: false; reject: false }> | null = null;
  private stderr = '';
  private tail: Promise<unknown> = Promise.resolve();
  private stdout = '';
  private waiter: { token: string; json: boolean; errors: string | null; resolve: (r: { errors: string; stdout: string }) => void; reject: (err: Error) => void } | null = null;
  private seq = 0;
  private readonly prefix = `elastic_sync_${randomBytes(6).toString('hex')}`;
  /** null: not tried yet; false: unusable here (use nft -f). */
  private usable: boolean | null = null;

  constructor(private readonly opts: ToolEnv & { timeoutMs?: number } = {}) {}

  /**
   * Run one transaction. Resolves with nft's error text ('' = committed), or false when no session
   * can run here (the caller falls back to `nft -f`). Rejects when the session died or hung
   * mid-transaction: whether it committed is then unknown, and the caller must re-read the kernel.
   */
  apply(text: string): Promise<string | false> {
    return this.enqueue(() => this.applyNow(text));
  }

  /**
   * `nft -j list table ip <table>` through the session: the JSON text, null when the table does not
   * exist, false when no session can run here (the caller runs nft itself). Rejects on other errors.
   */
  listTable(table: string, family: 'ip' | 'ip6' = 'ip'): Promise<string | null | false> {
    if (!/^[A-Za-z0-9_]+$/.test(table)) return Promise.resolve(false);
    return this.list(`table ${family} ${table}`);
  }

  private list(what: string): Promise<string | null | false> {
    return this.enqueue(async () => {
      if (!(await this.running())) return false;
      const r = await this.ask(`list ${what}\n`, true);
      if (r.errors) {
        if (/No such file or directory/.test(r.errors)) return null;
        throw new Error(r.errors.trim().split('\n').find((l) => /Error/.test(l)) ?? r.errors.trim());
      }
      return r.stdout;
    });
  }

  /**
   * `nft -j list map ip <table> <name>` through the session: the JSON text, null when it does not
   * exist, false when no session can run here.
   */
  listMap(table: string, name: string, family: 'ip' | 'ip6' = 'ip'): Promise<string | null | false> {
    if (!/^[A-Za-z0-9_]+$/.test(table) || !/^[A-Za-z0-9_]+$/.test(name)) return Promise.resolve(false);
    return this.list(`map ${family} ${table} ${name}`);
  }

  /** The running nft's pid (tests, diagnostics). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Start the session now (beside other work) so that the first transaction does not wait for it. */
  warm(): void {
    if (this.usable === false || this.child) return;
    void this.enqueue(() => this.running()).catch(() => {});
  }

  /** End the session (nft exits on end of input). */
  close(): void {
    const child = this.child;
    this.child = null;
    if (child) {
      child.stdin?.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      t.unref();
      void child.then(() => clearTimeout(t));
    }
    if (this.usable) this.usable = null;
  }

  /** One request at a time, in call order. */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => {});
    return run;
  }

  /** The session is up (started now if needed); false when it cannot run here. */
  private async running(): Promise<boolean> {
    if (this.usable === false) return false;
    return this.child !== null || this.start();
  }

  private async applyNow(text: string): Promise<string | false> {
    if (!(await this.running())) return false;
    // A private directory per transaction, removed right after: nothing is left behind even
    // when this process ends without closing the session.
    const dir = await mkdtemp(join(tmpdir(), 'elastic-nft-'));
    try {
      if (!/^[A-Za-z0-9_./-]+$/.test(dir)) {
        // The path goes inside double quotes on nft's command line: with any other TMPDIR, nft -f.
        this.close();
        this.usable = false;
        return false;
      }
      const file = join(dir, 'tx.nft');
      await writeFile(file, text, { mode: 0o600 });
      return (await this.ask(`include "${file}"\n`)).errors;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async start(): Promise<boolean> {
    const child = execa('nft', ['-j', '-i'], {
      buffer: false,
      reject: false,
      env: this.opts.env,
      extendEnv: this.opts.env === undefined,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      // Its own process group: a Ctrl-C at the terminal reaches elastic (which then removes its
      // rules through this session), not nft. It ends at end of input, whenever elastic ends.
      detached: true,
    });
    this.child = child;
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      this.stdout += chunk;
      this.settle();
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
      this.settle();
    });
    child.stdin?.on('error', () => {}); // EPIPE when nft died: reported through the exit below
    void child.then((r) => {
      if (this.child === child) this.child = null;
      const w = this.waiter;
      this.waiter = null;
      const how = r.exitCode !== undefined ? `exited with ${r.exitCode}` : r.signal ? `was killed (${r.signal})` : 'could not start';
      w?.reject(new Error(`nft -j -i ${how} during a transaction${this.stderr.trim() ? `: ${this.stderr.trim().split('\n')[0]}` : ''}`));
      this.stderr = '';
      this.stdout = '';
    });
    // Never keep the process alive for the session alone: an in-flight request holds a timer.
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
    try {
      await this.ask('', false, 5_000); // the probe: a lone sentinel
      this.usable = true;
      return true;
    } catch {
      this.close();
      this.usable = false;
      return false;
    }
  }

  /**
   * Send `line` (may be empty) and a sentinel; resolve with the error text before the sentinel's
   * own error and, with `json`, the complete JSON document the line printed on stdout.
   */
  private ask(line: string, json = false, timeoutMs = this.opts.timeoutMs ?? 30_000): Promise<{ errors: string; stdout: string }> {
    const child = this.child;
    if (!child?.stdin) return Promise.reject(new Error('nft -j -i is not running'));
    const token = `${this.prefix}_${++this.seq}`;
    this.stdout = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        child.kill('SIGKILL');
        reject(new Error(`nft -j -i did not answer within ${timeoutMs} ms (killed)`));
      }, timeoutMs);
      this.waiter = {
        token,
        json,
        errors: null,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      child.stdin!.write(`${line}list table ip ${token}\n`);
    });
  }

  /**
   * The sentinel's error is "Error: ...\nlist table ip <token>\n   ^^^^\n" on stderr: everything
   * before it is the line's own error text. stdout is a separate pipe, so a JSON answer may still be
   * on its way when the sentinel is read: it is complete when it parses (nft ends it with a newline).
   */
  private settle(): void {
    const w = this.waiter;
    if (!w) return;
    if (w.errors === null) {
      const marker = `\nlist table ip ${w.token}\n`;
      const at = this.stderr.indexOf(marker);
      if (at < 0) return;
      const end = this.stderr.indexOf('\n', at + marker.length);
      if (end < 0 || !/^\s*\^+$/.test(this.stderr.slice(at + marker.length, end))) return; // the caret line is still coming
      const head = this.stderr.slice(0, at);
      const errorLine = head.lastIndexOf('\n'); // drop the sentinel's own "Error: ..." line
      w.errors = errorLine < 0 ? '' : head.slice(0, errorLine + 1);
      this.stderr = this.stderr.slice(end + 1);
    }
    if (w.json && !w.errors && !completeJson(this.stdout)) return;
    this.waiter = null;
    w.resolve({ errors: w.errors, stdout: this.stdout });
    this.stdout = '';
  }
}

function completeJson(text: string): boolean {
  if (!text.endsWith('\n')) return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
