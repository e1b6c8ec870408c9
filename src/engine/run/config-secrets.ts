import { readFileSync } from 'node:fs';
import { ExitCode, UserError } from '../errors.js';
import { printable } from '../model/validate.js';

// An API key's secret in elastic.yaml (config.ts): secret_file, secret_env or inline.
type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A secret from a file (first line), an environment variable, or inline; never logged. */
export function resolveSecret(k: Raw, env: NodeJS.ProcessEnv): string {
  let secret: string | undefined;
  if (k.secret !== undefined) secret = k.secret;
  else if (k.secret_env !== undefined) {
    secret = env[k.secret_env];
    if (!secret) throw new UserError(`environment variable ${k.secret_env} is not set`, 'export it before starting elastic run', ExitCode.config);
  } else {
    try {
      // Sync on purpose: config parsing is one synchronous pass (validation must not race a reload).
      secret = readSecretFile(k.secret_file);
    } catch (err) {
      throw new UserError(`cannot read secret_file ${printable(k.secret_file, 200)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check the path and its permissions', ExitCode.config);
    }
  }
  const s = (secret ?? '').trim();
  if (!/^[\x21-\x7e]{16,128}$/.test(s)) throw new UserError('secret key must be 16-128 printable characters', 'check the key', ExitCode.config);
  return s;
}

function readSecretFile(path: string): string {
  return readFileSync(path, 'utf8').split('\n')[0] ?? '';
}
