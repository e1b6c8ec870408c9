import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';

/**
 * The shared secret of an edge and its nodes. Never on the command line (argv is world-readable
 * in /proc): from ELASTIC_EDGE_TOKEN, or from a file (--token-file). At least 16 characters.
 */
export const TOKEN_ENV = 'ELASTIC_EDGE_TOKEN';
export const MIN_TOKEN_CHARS = 16;

export interface TokenSource {
  file?: string;
  env?: NodeJS.ProcessEnv;
}

/** The token, or null when none is configured. A bad one is a UserError. */
export async function loadToken(src: TokenSource): Promise<{ token: Buffer; from: string } | null> {
  let text: string;
  let from: string;
  if (src.file) {
    let mode: number;
    try {
      mode = (await stat(src.file)).mode;
      text = await readFile(src.file, 'utf8');
    } catch (err) {
      throw new UserError(`cannot read the token file ${printable(src.file, 100)}: ${(err as Error).message}`, 'check the path and its permissions', ExitCode.config);
    }
    if (mode & 0o077) {
      throw new UserError(`the token file ${printable(src.file, 100)} is readable by others`, `chmod 600 ${printable(src.file, 100)}`, ExitCode.permission);
    }
    from = `file ${src.file}`;
  } else {
    const env = src.env ?? process.env;
    if (!env[TOKEN_ENV]) return null;
    text = env[TOKEN_ENV]!;
    from = `$${TOKEN_ENV}`;
  }
  text = text.trim();
  if (text.length < MIN_TOKEN_CHARS || /[\s\u0000-\u001f]/.test(text)) {
    throw new UserError(
      `the edge token (${from}) must be at least ${MIN_TOKEN_CHARS} printable characters without spaces`,
      'generate one with: openssl rand -hex 32',
      ExitCode.config,
    );
  }
  return { token: Buffer.from(text, 'utf8'), from };
}

/** A random token for an edge whose nodes are all started by itself. */
export function generateToken(): string {
  return randomBytes(32).toString('hex');
}
