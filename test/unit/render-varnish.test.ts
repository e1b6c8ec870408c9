import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtinTemplatePath } from '../../src/engine/frontends/template.js';
import { parseBackendList, vclReady } from '../../src/engine/frontends/varnish/applier.js';

// Varnish membership changes (issue 14 item 1): a new VCL is used only once its probes found a
// healthy backend per service; each retry of a fetch goes to another backend.
const list = (rows: string[]) => ['Backend name   Admin      Probe    Health     Last change', ...rows.map((r) => `${r}    Thu, 26 Nov 2026 15:39:11 GMT`), ''].join('\n');

describe('parseBackendList', () => {
  it('reads name (without the VCL), health and the probe column', () => {
    expect(parseBackendList(list(['elastic_ab_1.b_web_0  probe  1/3  sick', 'elastic_ab_1.b_web_1  healthy  0/0  healthy', 'elastic_ab_1.d_web  probe  1/2  healthy']))).toEqual([
      { name: 'b_web_0', healthy: false, good: 1, of: 3 },
      { name: 'b_web_1', healthy: true, good: 0, of: 0 },
      { name: 'd_web', healthy: true, good: 1, of: 2 },
    ]);
  });
  it('ignores the header and empty output', () => {
    expect(parseBackendList(list([]))).toEqual([]);
    expect(parseBackendList('')).toEqual([]);
  });
});

describe('vclReady', () => {
  it.each([
    ['every director has a healthy backend (a dead one may stay sick)', ['v.b_web_0  probe  1/3  sick', 'v.b_web_1  probe  2/3  healthy', 'v.d_web  probe  1/2  healthy'], true],
    ['a director with no healthy backend yet (probes start sick)', ['v.b_web_0  probe  1/3  sick', 'v.d_web  probe  0/1  sick', 'v.b_api_0  probe  2/3  healthy', 'v.d_api  probe  1/1  healthy'], false],
    ['an empty service (no backends) does not wait', ['v.d_web  probe  0/0  sick'], true],
    ['no directors (custom VCL): every backend healthy', ['v.b1  probe  2/3  healthy', 'v.b2  healthy  0/0  healthy'], true],
    ['no directors (custom VCL): one sick', ['v.b1  probe  1/3  sick', 'v.b2  healthy  0/0  healthy'], false],
    ['no backends at all', [], true],
  ])('%s', (_, rows, ready) => {
    expect(vclReady(parseBackendList(list(rows)))).toBe(ready);
  });
});

describe('built-in VCL', () => {
  const vcl = readFileSync(builtinTemplatePath('varnish'), 'utf8');
  it('picks the attempt-th healthy backend for a per-request key, so a retry never repeats a backend', () => {
    expect(vcl).toContain('directors.shard()');
    expect(vcl).toMatch(/alt=bereq\.retries, healthy=ALL/);
    expect(vcl).toMatch(/if \(bereq\.retries == 0\) \{\s*set bereq\.http\.X-Elastic-Shard-Key = bereq\.xid;/);
  });
  it('fetches a response of known size up to 1 MB whole, so a cut body is retried instead of cutting the client', () => {
    expect(vcl).toMatch(/sub vcl_backend_response \{[^}]*<= 1048576\) \{\s*set beresp\.do_stream = false;/);
  });
  it('retries only GET and HEAD, at most 4 times (varnishd max_retries default)', () => {
    expect(vcl).toMatch(/bereq\.retries < 4 && bereq\.method ~ "\^\(GET\|HEAD\)\$"/);
  });
});
