import { describe, expect, it } from 'vitest';
import { httpListenPorts, isQuiet, parseSs, QUIET_MS } from '../../src/engine/frontends/nginx/turnover.js';

describe('nginx reload turnover (pure parts)', () => {
  it('listen ports of the http block only', () => {
    const conf = 'http {\n  server {\n    listen 127.0.0.1:8080;\n  }\n  server {\n    listen [::1]:8081 default_server;\n    listen 8080;\n  }\n}\nstream {\n  server {\n    listen 127.0.0.1:9000;\n  }\n}\n';
    expect(httpListenPorts(conf)).toEqual([8080, 8081]);
    expect(httpListenPorts('events {}\n')).toEqual([]);
  });

  it('ss -Htin: one entry per connection, lastrcv/lastsnd (absent: just now)', () => {
    const out = [
      '0      0      127.0.0.1:25814 127.0.0.1:51600',
      '\t bbr wscale:10,10 rto:216 bytes_sent:120 bytes_received:27 data_segs_out:1 data_segs_in:1 lastsnd:3676 lastrcv:3670 lastack:3632 rcv_space:65483',
      '0      0      127.0.0.1:25814 127.0.0.1:51590',
      '\t cubic wscale:7,7 rto:204 lastack:12',
      '',
    ].join('\n');
    expect([...parseSs(out)]).toEqual([
      ['127.0.0.1:25814 127.0.0.1:51600', { rcv: 3670, snd: 3676, segsIn: 1, segsOut: 1 }],
      ['127.0.0.1:25814 127.0.0.1:51590', { rcv: 0, snd: 0, segsIn: 0, segsOut: 0 }],
    ]);
  });

  it.each([
    { c: { rcv: 5000, snd: 4000, segsIn: 3, segsOut: 3 }, quiet: true, why: 'answered, idle 4 s' },
    { c: { rcv: 5000, snd: QUIET_MS, segsIn: 3, segsOut: 3 }, quiet: true, why: 'answered, idle exactly QUIET_MS' },
    { c: { rcv: 5000, snd: 20, segsIn: 3, segsOut: 3 }, quiet: false, why: 'answered 20 ms ago: its client may be writing the next request' },
    { c: { rcv: 100, snd: 4000, segsIn: 3, segsOut: 2 }, quiet: false, why: 'a request came in after the last response: in progress' },
    { c: { rcv: 0, snd: 0, segsIn: 0, segsOut: 0 }, quiet: false, why: 'unknown: treated as busy' },
    // ss, measured: a first request in progress shows lastsnd == lastrcv (the handshake and the request in one tick)
    { c: { rcv: 712, snd: 712, segsIn: 1, segsOut: 0 }, quiet: false, why: 'first request in progress (nothing sent yet, same tick)' },
    { c: { rcv: 2000, snd: 2000, segsIn: 1, segsOut: 0 }, quiet: false, why: 'first request in progress for 2 s' },
    { c: { rcv: 712, snd: 712, segsIn: 0, segsOut: 0 }, quiet: true, why: 'connected, no request yet (nginx does not close it on QUIT)' },
    { c: { rcv: 900, snd: 900, segsIn: 4, segsOut: 4 }, quiet: true, why: 'answered in the same tick as its request, idle since' },
    { c: { rcv: 900, snd: 900, segsIn: 5, segsOut: 4 }, quiet: false, why: 'next request in the tick of the last response: in progress' },
  ])('$why: quiet $quiet', ({ c, quiet }) => {
    expect(isQuiet(c)).toBe(quiet);
  });
});
