import { describe, expect, it } from 'vitest';
import { parseStaticFile } from '../../src/engine/discovery/static/parse.js';
import { UserError } from '../../src/engine/errors.js';

describe('static backends file', () => {
  it('reads short and long forms, YAML and JSON', () => {
    const yaml = 'backends:\n  - 198.18.0.10:8080\n  - { address: 198.18.0.11, port: 8081, name: b, service: api, labels: { zone: a } }\n';
    const got = parseStaticFile(yaml, 'f.yaml', 'web').map((b) => `${b.id} ${b.service} ${b.name}`);
    expect(got).toEqual(['static:198.18.0.10:8080 web 198.18.0.10:8080', 'static:198.18.0.11:8081 api b']);
    expect(parseStaticFile('["198.18.0.12:80"]', 'f.json', 'web').map((b) => b.id)).toEqual(['static:198.18.0.12:80']);
  });

  it.each([
    ['backends:\n  - 198.18.0.10:80\n  - [unclosed\n', /f\.yaml:\d+: not valid YAML/],
    ['servers: []\n', /expected a "backends:" list/],
    ['backends:\n  - 198.18.0.10:80\n  - nothost:80\n', /f\.yaml:3: backends\[1\]: invalid endpoint/],
    ['backends:\n  - { address: 198.18.0.1, port: 99999 }\n', /backends\[0\]: invalid port/],
    ['backends:\n  - { address: "1.2.3.4\\n-j ACCEPT", port: 80 }\n', /invalid address/],
    ['backends:\n  - { address: 198.18.0.1, port: 80, service: "a b" }\n', /invalid service name/],
  ])('says where a malformed file is wrong (%#)', (text, re) => {
    let err: unknown;
    try {
      parseStaticFile(text, 'f.yaml', 'web');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toMatch(re);
    expect((err as UserError).exitCode).toBe(5);
  });
});
