import { describe, expect, it } from 'vitest';
import { toDiscoverOptions } from '../../src/engine/discover-options.js';

// An explicit empty backend list (elastic.yaml `static: { backends: [] }`, render --config
// `select: { backend: [] }`) is a static source with no backends. It used to read as "no selector
// given" and fall back to Docker discovery of every running container.
describe('toDiscoverOptions: an empty static list', () => {
  it.each([
    ['backend: []', { backend: [], service: 'empty' }, { static: true, docker: false }],
    ['no selector at all (discover: every container)', { service: 'all' }, { static: false, docker: true }],
    ['backend: [one]', { backend: ['127.0.0.1:1'], service: 'one' }, { static: true, docker: false }],
  ])('%s', (_what, flags, want) => {
    const o = toDiscoverOptions(flags);
    expect({ static: o.static !== undefined, docker: o.docker !== undefined }).toEqual(want);
  });
});
