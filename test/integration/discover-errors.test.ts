import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { elastic, BIN } from '../support/cli.js';
import { requireDocker } from '../support/docker.js';

/**
 * Bad input: a non-zero exit, one line on stderr naming the problem and what to try, nothing on
 * stdout, no stack trace unless --debug.
 */
let dir = '';
beforeAll(async () => {
  await requireDocker();
  dir = await mkdtemp(join(tmpdir(), 'elastic-errors-'));
  await writeFile(join(dir, 'bad.yaml'), 'backends:\n  - 198.18.0.10:80\n  - 198.18.0.11\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const cases: Array<[string, string[], Record<string, string>, number, RegExp]> = [
  ['Docker socket missing', ['discover', '--image', 'x', '--docker-host', 'unix:///nonexistent/docker.sock'], {}, 3, /Docker socket not found at unix:\/\/\/nonexistent\/docker.sock.*try: is dockerd running/],
  ['daemon down (connection refused)', ['discover', '--image', 'x', '--docker-host', 'tcp://127.0.0.1:1'], {}, 3, /refused the connection.*try: start dockerd/],
  ['malformed DOCKER_HOST', ['discover', '--image', 'x'], { DOCKER_HOST: 'tcp://' }, 2, /malformed Docker host "tcp:\/\/".*try: use unix:\/\//],
  ['unknown flag', ['discover', '--imagee', 'x'], {}, 2, /Nonexistent flag: --imagee.*try: .*elastic discover --help/],
  ['--label without =', ['discover', '--label', 'app'], {}, 2, /--label "app" has no "=".*try: write it as --label key=value/],
  ['invalid ip:port', ['discover', '--backend', '198.18.0.10'], {}, 2, /invalid backend "198.18.0.10".*try: write it as IP:PORT/],
  ['static file missing', ['discover', '--file', '/nonexistent/backends.yaml'], {}, 5, /does not exist.*try: check the --file path/],
  ['static file malformed, says where', ['discover', '--file', '@BAD'], {}, 5, /bad.yaml:3: backends\[1\]: invalid endpoint "198.18.0.11"/],
  ['invalid --check', ['discover', '--backend', '198.18.0.10:80', '--check', 'udp'], {}, 2, /invalid --check "udp"/],
  ['EC2 without --port', ['discover', '--tag', 'Role=web'], {}, 2, /EC2 discovery needs --port/],
];

describe('discover: bad input gets one clear line and a non-zero exit', () => {
  it.each(cases)('%s', async (_name, args, env, code, re) => {
    const r = await elastic(args.map((a) => (a === '@BAD' ? join(dir, 'bad.yaml') : a)), { env });
    expect(r.exitCode).toBe(code);
    expect(String(r.stdout)).toBe('');
    const err = String(r.stderr).trim();
    expect(err).toMatch(re);
    expect(err.split('\n')).toHaveLength(1);
    expect(err).not.toMatch(/\n\s+at /);
  });

  it('--json errors are JSON on stdout', async () => {
    const r = await elastic(['discover', '--json', '--backend', 'nope']);
    expect(r.exitCode).toBe(2);
    expect(JSON.parse(String(r.stdout))).toMatchObject({ error: { kind: 'user', exitCode: 2, message: 'invalid backend "nope"' } });
  });

  it('--debug adds the stack trace', async () => {
    const r = await elastic(['discover', '--backend', 'nope', '--debug']);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(/\n\s+at /);
  });

  it('permission denied on the socket, as an unprivileged user', async () => {
    const r = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'discover', '--image', 'x'], {
      reject: false,
      env: { CI: 'true', HOME: '/tmp', ELASTIC_STATE_DIR: dir },
      stdin: 'ignore',
    });
    expect(r.exitCode).toBe(4);
    expect(String(r.stderr).trim()).toMatch(/^error: permission denied on the Docker socket .*try: run as root, or add this user to the docker group$/);
  });

  it('static backends work without Docker', async () => {
    const r = await elastic(['discover', '--backend', '198.18.0.10:80', '--backend', '[2001:db8::1]:8080', '--json']);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(String(r.stdout)).backends.map((b: { endpoint: string }) => b.endpoint)).toEqual(['198.18.0.10:80', '[2001:db8::1]:8080']);
  });
});
