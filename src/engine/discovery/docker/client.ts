import type Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { join } from 'node:path';
import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';

/**
 * The one place a dockerode client is made, and the one place Docker's errors are translated
 * into messages an operator can act on. Other engine parts (deploy) reuse both.
 */
export interface DockerTarget {
  /** What the operator gave (or the default), for messages. */
  readonly display: string;
  readonly options: Docker.DockerOptions;
}

/** Parse DOCKER_HOST / --docker-host strictly: unix://, tcp://, ssh://, or a bare host:port. */
export function parseDockerHost(value: string | undefined, env: NodeJS.ProcessEnv = process.env): DockerTarget {
  if (!value) return { display: 'unix:///var/run/docker.sock', options: { socketPath: '/var/run/docker.sock' } };
  const bad = () =>
    new UserError(
      `malformed Docker host "${printable(value, 80)}"`,
      'use unix:///var/run/docker.sock, tcp://HOST:2375, or ssh://USER@HOST (DOCKER_HOST or --docker-host)',
      ExitCode.usage,
    );
  if (value.startsWith('unix://')) {
    const socketPath = value.slice('unix://'.length);
    if (!socketPath.startsWith('/')) throw bad();
    return { display: value, options: { socketPath } };
  }
  const withScheme = value.includes('://') ? value : `tcp://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw bad();
  }
  if (!url.hostname) throw bad();
  if (url.protocol === 'tcp:' || url.protocol === 'http:' || url.protocol === 'https:') {
    if (!url.port) throw bad();
    const tls = env.DOCKER_TLS_VERIFY === '1' || url.port === '2376' || url.protocol === 'https:';
    const options: Docker.DockerOptions = { host: url.hostname, port: Number(url.port), protocol: tls ? 'https' : 'http' };
    if (tls && env.DOCKER_CERT_PATH) {
      try {
        options.ca = readFileSync(join(env.DOCKER_CERT_PATH, 'ca.pem'));
        options.cert = readFileSync(join(env.DOCKER_CERT_PATH, 'cert.pem'));
        options.key = readFileSync(join(env.DOCKER_CERT_PATH, 'key.pem'));
      } catch (err) {
        throw new UserError(
          `cannot read Docker TLS files in ${env.DOCKER_CERT_PATH}: ${(err as Error).message}`,
          'DOCKER_CERT_PATH must hold ca.pem, cert.pem and key.pem',
          ExitCode.config,
        );
      }
    }
    return { display: value, options };
  }
  if (url.protocol === 'ssh:') {
    return {
      display: value,
      options: {
        protocol: 'ssh',
        host: url.hostname,
        port: url.port ? Number(url.port) : 22,
        username: url.username || undefined,
        sshOptions: { agent: env.SSH_AUTH_SOCK },
      } as Docker.DockerOptions,
    };
  }
  throw bad();
}

/**
 * `stream: true` is for long-lived streams (events): the 15 s request timeout is an idle timeout
 * on the socket, and it tore a quiet event stream down every 15 s. Such a client bounds only the
 * connect; a lost daemon still ends the stream (closed socket, TCP keepalive) and the watcher's
 * periodic re-list notices a daemon that stopped answering.
 */
export function createDocker(host?: string, env: NodeJS.ProcessEnv = process.env, opts: { stream?: boolean } = {}): { docker: Docker; target: DockerTarget } {
  const target = parseDockerHost(host ?? env.DOCKER_HOST, env);
  const limits = opts.stream ? { connectionTimeout: 15_000 } : { timeout: 15_000 };
  const DockerClient = dockerode();
  return { docker: new DockerClient({ ...target.options, ...limits } as Docker.DockerOptions), target };
}

const require = createRequire(import.meta.url);
let loaded: typeof Docker | null = null;

/**
 * dockerode, loaded on the first client made (a daemon without Docker sources or deploys never
 * loads it). Its docker-modem requires ssh2 eagerly, for ssh:// hosts only, and ssh2 costs a
 * daemon about 15 MB of memory (its poly1305 WebAssembly heap; docs/BENCHMARKS.md, fleet idle):
 * docker-modem's ssh module is replaced by one that loads the real one on its first call.
 */
function dockerode(): typeof Docker {
  if (loaded) return loaded;
  const modem = createRequire(require.resolve('dockerode'));
  const path = modem.resolve('docker-modem/lib/ssh.js');
  if (!require.cache[path]) {
    const lazy = new Module(path);
    lazy.filename = path;
    lazy.loaded = true;
    let real: ((o: unknown) => unknown) | null = null;
    lazy.exports = (opt: unknown) => {
      if (!real) {
        delete require.cache[path];
        real = modem(path) as (o: unknown) => unknown;
      }
      return real(opt);
    };
    require.cache[path] = lazy;
  }
  loaded = require('dockerode') as typeof Docker;
  return loaded;
}

/** Translate a dockerode/socket error into a UserError; unknown errors pass through. */
export function dockerError(err: unknown, target: DockerTarget): unknown {
  if (err instanceof UserError) return err;
  const e = err as NodeJS.ErrnoException & { statusCode?: number; json?: { message?: string } };
  const where = target.display;
  switch (e?.code) {
    case 'ENOENT':
      return new UserError(
        `Docker socket not found at ${where}`,
        'is dockerd running? start it, or point DOCKER_HOST / --docker-host at the right socket',
        ExitCode.unavailable,
        { cause: err },
      );
    case 'EACCES':
    case 'EPERM':
      return new UserError(
        `permission denied on the Docker socket ${where}`,
        'run as root, or add this user to the docker group',
        ExitCode.permission,
        { cause: err },
      );
    case 'ECONNREFUSED':
      return new UserError(`Docker daemon at ${where} refused the connection (is it down?)`, 'start dockerd, or check DOCKER_HOST', ExitCode.unavailable, { cause: err });
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENOTFOUND':
    case 'ECONNRESET':
      return new UserError(`cannot reach the Docker daemon at ${where} (${e.code})`, 'check DOCKER_HOST and that dockerd is running', ExitCode.unavailable, { cause: err });
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400) {
    const msg = e.json?.message ?? e.message;
    return new UserError(`Docker answered ${e.statusCode}: ${printable(String(msg), 200)}`, 'check the request and the daemon log', ExitCode.failure, { cause: err });
  }
  return err;
}
