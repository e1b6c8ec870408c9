import { createHmac, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';
import { claimedRoute, verifyAuth } from './protocol.js';

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
      const info = await stat(src.file);
      // Not a device or FIFO (it could be read forever), and a token is short.
      if (!info.isFile() || info.size > 4096) throw new Error(info.isFile() ? 'larger than 4 KiB' : 'not a regular file');
      mode = info.mode;
      text = await readFile(src.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? (err as Error).message);
      throw new UserError(`cannot read the token file ${printable(src.file, 100)}: ${why}`, 'check the path and its permissions', ExitCode.config);
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

/**
 * A token valid for one route: hex(HMAC-SHA256(edge token, "elastic-edge/route:" + route)).
 * The edge hands it (not its own token) to the instances it starts, so a node, or an app that
 * reads its node's environment, can serve only its own route; an operator derives it for nodes
 * started elsewhere with
 *   printf 'elastic-edge/route:%s' ROUTE | openssl dgst -sha256 -hmac "$(cat TOKEN_FILE)" -r | cut -c1-64
 */
export function routeToken(token: Buffer, route: string): Buffer {
  return Buffer.from(createHmac('sha256', token).update(`elastic-edge/route:${route}`).digest('hex'));
}

/**
 * Check a node's AUTH against the edge token, or else against the token of the route the AUTH
 * claims (the route is inside the MAC, so a route token authenticates only that route). Returns
 * the key that verified it, for the WELCOME.
 */
export function authenticateNode(token: Buffer, edgeNonce: Buffer, payload: Buffer): { meta: unknown; nodeNonce: Buffer; key: Buffer } | null {
  const full = verifyAuth(token, edgeNonce, payload);
  if (full) return { ...full, key: token };
  const route = claimedRoute(payload);
  if (route === null) return null;
  const key = routeToken(token, route);
  const scoped = verifyAuth(key, edgeNonce, payload);
  return scoped ? { ...scoped, key } : null;
}
