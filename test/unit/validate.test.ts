import { describe, expect, it } from 'vitest';
import { parseEndpoint, parseKeyValue, parsePort, printable, toIdent } from '../../src/engine/model/validate.js';
import { UserError } from '../../src/engine/errors.js';
import { globToRegExp, normalizeImageRef } from '../../src/engine/discovery/selector.js';

describe('parseEndpoint', () => {
  it.each([
    ['198.18.0.10:8080', { address: '198.18.0.10', port: 8080 }],
    ['[2001:db8::1]:80', { address: '2001:db8::1', port: 80 }],
  ])('%s', (text, want) => expect(parseEndpoint(text)).toEqual(want));

  it.each(['198.18.0.10', 'host.example:80', '198.18.0.10:0', '198.18.0.10:65536', '198.18.0.10:80 -j ACCEPT', ':80', '2001:db8::1:80', '300.1.1.1:80'])(
    'rejects %j with a usage error',
    (text) => {
      expect(() => parseEndpoint(text)).toThrowError(UserError);
      try {
        parseEndpoint(text);
      } catch (err) {
        expect((err as UserError).exitCode).toBe(2);
        expect((err as UserError).hint).toMatch(/IP:PORT/);
      }
    },
  );
});

describe('parseKeyValue', () => {
  it.each([
    ['app=web', { key: 'app', value: 'web' }],
    ['a=b=c', { key: 'a', value: 'b=c' }],
    ['empty=', { key: 'empty', value: '' }],
  ])('%s', (text, want) => expect(parseKeyValue(text, '--label')).toEqual(want));
  it.each(['novalue', '=v', 'k=v\nx'])('rejects %j', (text) => expect(() => parseKeyValue(text, '--label')).toThrowError(UserError));
});

describe('small parsers', () => {
  it('ports', () => {
    expect(parsePort('80')).toBe(80);
    for (const bad of ['0', '65536', '-1', '8o', '', '1e3']) expect(() => parsePort(bad)).toThrowError(UserError);
  });
  it('printable removes control characters and bounds length', () => {
    expect(printable('a\nb\u001b[31mc')).toBe('a?b?[31mc');
    expect(printable('x'.repeat(300), 10)).toHaveLength(10);
  });
  it('toIdent', () => {
    expect(toIdent('elastic-test/web')).toBe('elastic-test_web');
    expect(toIdent('../../etc')).toBe('etc');
    expect(toIdent('')).toBe('x');
  });
  it('globs are anchored and literal except * and ?', () => {
    expect(globToRegExp('web-*').test('web-12')).toBe(true);
    expect(globToRegExp('web-*').test('xweb-12')).toBe(false);
    expect(globToRegExp('w?b').test('web')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
    expect(globToRegExp('(a|b)').test('a')).toBe(false);
  });
  it('image refs normalize', () => {
    expect(normalizeImageRef('nginx')).toBe('nginx:latest');
    expect(normalizeImageRef('docker.io/library/nginx:1')).toBe('nginx:1');
    expect(normalizeImageRef('nginx@sha256:abc')).toBe('nginx@sha256:abc');
  });
});
