import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestStatus, type Snapshot } from '../../src/engine/runtime/status.js';
import { BIN, elastic } from '../support/cli.js';
import { LineReader } from '../support/lines.js';
import { TEST_TOKEN } from '../support/proxy.js';

/**
 * Operator mistakes get one line that says what is wrong and what to try (never "unexpected
 * error", never oclif's "Parsing --flag" text, never "undefined"); --help shows durations in the
 * unit the flag takes. Built binary. Port 23050.
 */
const dir = mkdtempSync(join(tmpdir(), 'elastic-proxy-errors-'));
const env = { ELASTIC_RUN_DIR: join(dir, 'run'), ELASTIC_STATE_DIR: join(dir, 'state'), ELASTIC_EDGE_TOKEN: TEST_TOKEN };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const oneLine = (stderr: unknown) => {
  const lines = String(stderr).trim().split('\n');
  expect(lines, String(stderr)).toHaveLength(1);
  expect(lines[0]).not.toMatch(/unexpected error|Parsing --|undefined|\?\?/);
  return lines[0]!;
};

describe('proxy and shared flag errors', () => {
  it.each([
    [['proxy', 'edge', '-p', '23050', '--address', '999.1.1.1'], 2, /^error: invalid --address "999\.1\.1\.1"\. try: give a local IPv4 or IPv6 address/],
    [['proxy', 'edge', '-p', '23050', '--node-address', '999.1.1.1'], 2, /^error: invalid --node-address "999\.1\.1\.1"/],
    [['proxy', 'edge', '-p', '23050', '--name', '../../x'], 2, /^error: invalid --name "\.\.\/\.\.\/x"\. try: use letters, digits/],
    [['proxy', 'edge', '-p', '23050', '--queue-timeout', 'x'], 2, /^error: invalid --queue-timeout "x"\. try: give a number of seconds from 0 to 86400/],
    [['proxy', 'edge', '-p', '23050', '--stop-grace', '99999999'], 2, /^error: invalid --stop-grace "99999999"/],
    [['proxy', 'edge', '-p', '23050', '--max-queue', 'many'], 2, /^error: invalid --max-queue: expected an integer but received "many"\. try: see elastic proxy edge --help$/],
    [['proxy', 'edge', '-p', '23050', '--token-file', '/dev/zero'], 5, /^error: cannot read the token file \/dev\/zero: not a regular file/],
    [['proxy', 'edge', '-p', '23050', '--token-file', join(dir, 'absent')], 5, /^error: cannot read the token file \S+: no such file/],
    [['discover', '--file', '/dev/zero'], 5, /^error: cannot read \/dev\/zero: not a regular file/],
  ] as const)('%j', async (args, code, re) => {
    const r = await elastic([...args], { env, timeout: 20_000 });
    expect(r.exitCode, String(r.stderr)).toBe(code);
    expect(oneLine(r.stderr)).toMatch(re);
  });

  it('--help shows durations in seconds, and the defaults are those seconds', async () => {
    const help = String((await elastic(['proxy', 'edge', '--help'])).stdout);
    expect(help).toMatch(/--queue-timeout=<value>\s+\[default: 30\] seconds a client may wait/);
    expect(help).toMatch(/--stop-grace=<value>\s+\[default: 10\]/);
    expect(help).toMatch(/--idle-timeout=<value>\s+\[default: 60\]/);
    expect(help).not.toMatch(/default: (30000|10000|60000)\]/);
    expect(String((await elastic(['proxy', 'node', '--help'])).stdout)).toMatch(/--grace=<value>\s+\[default: 10\]/);
    const e = execa(process.execPath, [BIN, 'proxy', 'edge', '--json', '-p', '23050', '--name', 'errs'], { env: { ...env, CI: 'true' }, reject: false, stdin: 'ignore' });
    try {
      await new LineReader(e.stdout!).json((l: { type?: string }) => l.type === 'listening', 'the listening line');
      const snap = await requestStatus<Snapshot>(join(env.ELASTIC_RUN_DIR, 'edge.errs.sock'));
      expect(snap.config.queueTimeoutMs).toBe(30_000);
    } finally {
      e.kill('SIGTERM');
      await e;
    }
  });
});
