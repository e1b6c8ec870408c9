import { describe, expect, it } from 'vitest';
import { diffBackends, sortBackends, type Backend } from '../../src/engine/model/backend.js';
import { staticBackend } from '../../src/engine/discovery/static/parse.js';

const b = (ip: string, over: Partial<Backend> = {}): Backend => ({ ...staticBackend(ip, 80, 'web'), ...over });

describe('diffBackends', () => {
  const cases: Array<[string, Backend[], Backend[], string[]]> = [
    ['nothing to nothing', [], [], []],
    ['added', [], [b('198.18.0.2')], ['added static:198.18.0.2:80']],
    ['removed', [b('198.18.0.2')], [], ['removed static:198.18.0.2:80']],
    ['unchanged', [b('198.18.0.2')], [b('198.18.0.2')], []],
    ['health changed', [b('198.18.0.2')], [b('198.18.0.2', { health: 'unhealthy' })], ['changed static:198.18.0.2:80 health']],
    ['labels changed', [b('198.18.0.2')], [b('198.18.0.2', { labels: { a: '1' } })], ['changed static:198.18.0.2:80 labels']],
    ['since alone is no change', [b('198.18.0.2')], [b('198.18.0.2', { since: '2030-01-01T00:00:00.000Z' })], []],
    ['mixed, in id order', [b('198.18.0.3'), b('198.18.0.2')], [b('198.18.0.4'), b('198.18.0.2')], ['removed static:198.18.0.3:80', 'added static:198.18.0.4:80']],
  ];
  it.each(cases)('%s', (_n, before, after, want) => {
    const got = diffBackends(sortBackends(before), sortBackends(after)).map((c) => [c.type, c.backend.id, ...(c.fields ?? [])].join(' '));
    expect(got).toEqual(want);
  });

  it('sortBackends dedupes by id', () => {
    expect(sortBackends([b('198.18.0.2'), b('198.18.0.2')])).toHaveLength(1);
  });
});
