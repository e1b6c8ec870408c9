import { describe, expect, it } from 'vitest';
import { isProxyNodeCommand } from '../../src/engine/edge/instances.js';

/** Which start commands get a spare by default (`proxy edge` without --spare / --no-spare). */
describe('isProxyNodeCommand', () => {
  it.each([
    [['elastic', 'proxy', 'node', '--', 'node', 'app.js'], true],
    [['/usr/local/bin/elastic', 'proxy', 'node', '--concurrency', '4', '--', './api'], true],
    [['/usr/bin/node', '/opt/elastic/bin/run.js', 'proxy', 'node', '--', './api'], true],
    [['node', 'bin/run.js', 'proxy', 'node'], true],
    [['elastic', 'proxy', 'edge'], false],
    [['elastic', 'node', 'proxy'], false],
    [['node', 'server.js'], false],
    [['./start.sh', 'proxy', 'node'], false],
    [['node', 'other.js', 'proxy', 'node'], false],
    [['sh', '-c', 'elastic proxy node -- app'], false],
    [[], false],
  ])('%j: %s', (argv, want) => expect(isProxyNodeCommand(argv)).toBe(want));

  it('no command', () => expect(isProxyNodeCommand(undefined)).toBe(false));
});
