import { describe, expect, it } from 'vitest';
import { configBinds, overlaps, parseProcNetTcp } from '../../src/engine/runtime/ports.js';

const HEAD = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const row = (local: string, st: string, inode: number) => `   0: ${local} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000036b90705 100 0 0 10 0\n`;

describe('the kernel listening sockets (/proc/net/tcp, tcp6)', () => {
  it.each([
    ['0100007F:5432', '127.0.0.1', 0x5432],
    ['00000000:07E8', '0.0.0.0', 2024],
    ['00000000000000000000000001000000:0050', '::1', 80],
    ['00000000000000000000000000000000:1F90', '::', 8080],
    ['0000000000000000FFFF00000100007F:0050', '127.0.0.1', 80],
    ['B80D0120000000000000000001000000:0016', '2001:db8::1', 22],
  ])('%s is %s:%i', (local, address, port) => {
    expect(parseProcNetTcp(HEAD + row(local, '0A', 42))).toEqual([{ address, port, inode: 42 }]);
  });

  it('only LISTEN sockets count (an established connection on the port is not a listener)', () => {
    expect(parseProcNetTcp(HEAD + row('0100007F:0050', '01', 1) + row('0100007F:0050', '06', 2))).toEqual([]);
  });
});

describe('overlaps: would a bind collide with (or share) a listener', () => {
  it.each([
    [{ address: '127.0.0.1', port: 80 }, { address: '127.0.0.1', port: 80 }, true],
    [{ address: '127.0.0.1', port: 80 }, { address: '0.0.0.0', port: 80 }, true],
    [{ address: '0.0.0.0', port: 80 }, { address: '127.0.0.2', port: 80 }, true],
    [{ address: '127.0.0.1', port: 80 }, { address: '::', port: 80 }, true],
    [{ address: '0:0::1', port: 80 }, { address: '::1', port: 80 }, true],
    [{ address: '127.0.0.1', port: 80 }, { address: '127.0.0.2', port: 80 }, false],
    [{ address: '127.0.0.1', port: 80 }, { address: '127.0.0.1', port: 81 }, false],
  ])('%j vs %j: %s', (bind, listener, want) => expect(overlaps(bind, listener)).toBe(want));
});

describe('configBinds: the TCP ports a rendered config binds', () => {
  it('HAProxy: address:port, :port, *:port, comma lists, ranges, ipv6@, brackets; not unix/fd/udp', () => {
    const cfg = [
      'frontend a',
      '  bind 127.0.0.1:8080',
      '  bind :8081 name x',
      '  bind *:8082,127.0.0.2:8083',
      '  bind 127.0.0.1:9000-9002',
      '  bind ipv6@:::8084',
      '  bind [::1]:8085',
      '  bind unix@/run/x.sock',
      '  bind /run/y.sock',
      '  bind fd@3',
      '  # bind 127.0.0.1:1',
      '  stats socket /run/s.sock',
    ].join('\n');
    expect(configBinds('haproxy', cfg).map((b) => `${b.address} ${b.port}`)).toEqual([
      '127.0.0.1 8080', '0.0.0.0 8081', '0.0.0.0 8082', '127.0.0.2 8083', '127.0.0.1 9000', '127.0.0.1 9001', '127.0.0.1 9002', ':: 8084', '::1 8085',
    ]);
  });

  it('nginx: listen PORT, ADDRESS:PORT, [v6]:PORT with parameters; not unix:', () => {
    const cfg = 'http {\n  server {\n    listen 8080;\n    listen 127.0.0.1:8081 reuseport;\n    listen [::]:8082;\n    listen unix:/run/n.sock;\n  }\n}\n';
    expect(configBinds('nginx', cfg).map((b) => `${b.address} ${b.port}`)).toEqual(['0.0.0.0 8080', '127.0.0.1 8081', ':: 8082']);
  });

  it('Varnish VCL binds nothing (varnishd -a does)', () => {
    expect(configBinds('varnish', 'backend b1 { .host = "127.0.0.1"; .port = "80"; }')).toEqual([]);
  });
});
