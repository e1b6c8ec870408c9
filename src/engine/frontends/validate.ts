import { execa } from 'execa';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import type { ProxyKind } from './model.js';

/**
 * Validation of a staged config by the proxy itself: `haproxy -c -f`, `nginx -t -c`,
 * `varnishd -C -f`. A rejection becomes a ConfigRejected error naming the line and quoting it,
 * so the operator sees what the proxy saw without opening the staged file.
 */
export class ConfigRejected extends UserError {
  constructor(
    message: string,
    readonly line: number | null,
    readonly output: string,
  ) {
    super(message, 'the live config is untouched; fix the template or the service spec and re-run', ExitCode.refused);
  }
}

export interface ValidateOptions {
  /** Override the binary (tests, non-standard installs). */
  bin?: string;
  /** Name to show in errors instead of the staged temp path. */
  displayPath?: string;
}

const BINARIES: Record<ProxyKind, string> = { haproxy: 'haproxy', nginx: 'nginx', varnish: 'varnishd' };

/** Pick the first meaningful error line and its config line number out of the proxy's output. */
export function parseValidationOutput(proxy: ProxyKind, output: string): { line: number | null; message: string } {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  if (proxy === 'haproxy') {
    const hit = lines.find((l) => /\[ALERT\].*parsing \[[^\]]*:\d+\]/.test(l)) ?? lines.find((l) => l.includes('[ALERT]'));
    const line = hit ? /parsing \[[^\]]*:(\d+)\]/.exec(hit)?.[1] : undefined;
    const message = hit ? hit.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*(config\s*:\s*)?/, '').replace(/parsing \[[^\]]*\]\s*:\s*/, '') : lines.at(-1) ?? 'rejected';
    return { line: line ? Number(line) : null, message };
  }
  if (proxy === 'nginx') {
    const hit = lines.find((l) => /\[emerg\]/.test(l)) ?? lines.find((l) => /test failed/.test(l)) ?? lines.at(-1) ?? 'rejected';
    const line = /:(\d+)$/.exec(hit)?.[1];
    return { line: line ? Number(line) : null, message: hit.replace(/^.*\[emerg\]\s*\d+#\d+:\s*/, '').replace(/ in \S+:\d+$/, '') };
  }
  const at = lines.findIndex((l) => /Line \d+ Pos \d+/.test(l));
  const line = at >= 0 ? /Line (\d+)/.exec(lines[at]!)?.[1] : undefined;
  const vcc = lines.indexOf('Message from VCC-compiler:');
  const message = vcc >= 0 && lines[vcc + 1] ? lines[vcc + 1]! : lines.find((l) => !/^Could not delete/.test(l)) ?? 'rejected';
  return { line: line ? Number(line) : null, message };
}

/** Run the proxy's own check on `file` (whose text is `text`). Throws ConfigRejected. */
export async function validateConfig(proxy: ProxyKind, file: string, text: string, opts: ValidateOptions = {}): Promise<void> {
  const bin = opts.bin ?? BINARIES[proxy];
  let args: string[];
  let scratch: string | null = null;
  if (proxy === 'haproxy') args = ['-c', '-f', file];
  else if (proxy === 'nginx') args = ['-t', '-q', '-c', file];
  else {
    // varnishd -C compiles in a working directory; give it a private one.
    scratch = await mkdtemp(join(tmpdir(), 'elastic-vcc-'));
    await chmod(scratch, 0o755); // the VCC runs as varnishd's unprivileged user
    args = ['-C', '-f', file, '-n', scratch];
  }
  try {
    const r = await execa(bin, args, { reject: false, timeout: 30_000, stdin: 'ignore', all: true });
    if ((r as { code?: string }).code === 'ENOENT' || r.exitCode === undefined) {
      throw new UserError(`${bin} is not installed or cannot run`, `install ${proxy} (the render check needs the proxy binary), or pass its path`, ExitCode.unavailable);
    }
    if (r.exitCode === 0) return;
    const out = String(r.all ?? '');
    const { line, message } = parseValidationOutput(proxy, out);
    const where = `${opts.displayPath ?? file}${line ? `:${line}` : ''}`;
    const source = line ? text.split('\n')[line - 1] : undefined;
    throw new ConfigRejected(
      `${proxy} rejected ${where}: ${printable(message, 200)}${source !== undefined ? ` (line: ${printable(source.trim(), 120)})` : ''}`,
      line,
      out,
    );
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}
