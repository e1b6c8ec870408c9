import { describe, expect, it } from 'vitest';
import { checkPage, pageString } from '../../src/engine/frontends/error-page.js';

// The custom 503 page as one double-quoted config string (pure): read back byte for byte by
// HAProxy and nginx (test/integration/render-error-page.test.ts serves it through both).
describe('pageString', () => {
  it.each([
    ['plain', 'haproxy', '<p>x</p>', '"<p>x</p>"'],
    ['newline, CR, tab', 'haproxy', 'a\r\nb\tc', '"a\\r\\nb\\tc"'],
    ['quote and backslash', 'haproxy', 'say "hi" \\o/', '"say \\"hi\\" \\\\o/"'],
    ['HAProxy: $ (env expansion) and # (comment) escaped', 'haproxy', '$HOME ${X} #1', '"\\$HOME \\${X} \\#1"'],
    ["single quote literal", 'haproxy', "it's", '"it\'s"'],
    ['nginx: $ as the dollar variable', 'nginx', 'cost $5', '"cost ${elastic_dollar}5"'],
    ['nginx: # literal in a quoted string', 'nginx', '#1 "a"', '"#1 \\"a\\""'],
  ] as const)('%s', (_what, proxy, text, want) => {
    expect(pageString(proxy, text)).toBe(want);
  });
});

describe('checkPage', () => {
  it.each([
    ['an escape sequence', 'a\u001b[2J', /control character \(U\+001b\)/],
    ['a line separator', 'a\u2028b', /control character \(U\+2028\)/],
    ['blank', ' \n\t', /is empty/],
    ['invalid UTF-8', Buffer.from([0x61, 0xc3]), /not UTF-8/],
    ['too long once quoted for nginx', '$'.repeat(240), /does not fit one nginx config string/],
  ])('refuses %s', (_what, input, message) => {
    expect(() => checkPage('p.html', Buffer.isBuffer(input) ? input : Buffer.from(input))).toThrow(message);
  });

  it('keeps UTF-8, tabs and newlines as they are', () => {
    expect(checkPage('p.html', Buffer.from('Bientôt\t—\r\n'))).toBe('Bientôt\t—\r\n');
  });
});
