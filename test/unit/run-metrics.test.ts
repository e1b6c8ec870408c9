import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseExposition } from '../fixtures/run/exposition.js';
import { MetricsRegistry, StatsdEmitter, escapeLabelValue, serveMetrics, statsdPart } from '../../src/engine/run/metrics.js';

describe('metrics registry', () => {
  it('exposes counters, gauges and histograms in the Prometheus text format', async () => {
    const r = new MetricsRegistry();
    r.counter('elastic_reloads_total', 'reloads', ['applier']).inc({ applier: 'haproxy' }, 2);
    r.gauge('elastic_backends', 'backends per service', ['service']).set({ service: 'web' }, 3);
    const h = r.histogram('elastic_sync_duration_seconds', 'sync', ['applier'], [0.01, 0.1, 1]);
    h.observe({ applier: 'haproxy' }, 0.05);
    h.observe({ applier: 'haproxy' }, 0.5);
    r.addCollector('dyn', () => r.gauge('elastic_dyn', 'pulled at scrape', []).set({}, 7));
    const srv = await serveMetrics(r, { address: '127.0.0.1', port: 0, path: '/metrics' });
    try {
      const res = await fetch(`http://127.0.0.1:${srv.port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
      const { samples, types } = parseExposition(await res.text());
      expect(samples.get('elastic_reloads_total{applier="haproxy"}')).toBe(2);
      expect(samples.get('elastic_backends{service="web"}')).toBe(3);
      expect(samples.get('elastic_sync_duration_seconds_bucket{applier="haproxy",le="0.01"}')).toBe(0);
      expect(samples.get('elastic_sync_duration_seconds_bucket{applier="haproxy",le="0.1"}')).toBe(1);
      expect(samples.get('elastic_sync_duration_seconds_bucket{applier="haproxy",le="+Inf"}')).toBe(2);
      expect(samples.get('elastic_sync_duration_seconds_count{applier="haproxy"}')).toBe(2);
      expect(samples.get('elastic_sync_duration_seconds_sum{applier="haproxy"}')).toBeCloseTo(0.55);
      expect(samples.get('elastic_dyn')).toBe(7);
      expect(types.get('elastic_sync_duration_seconds')).toBe('histogram');
      expect((await fetch(`http://127.0.0.1:${srv.port}/other`)).status).toBe(404);
    } finally {
      await srv.close();
    }
  });

  it('refuses a counter going down and bad names', () => {
    const r = new MetricsRegistry();
    expect(() => r.counter('elastic_x_total', 'x').inc({}, -1)).toThrow();
    expect(() => r.counter('bad name', 'x')).toThrow();
    expect(() => r.gauge('elastic_x_total', 'x')).toThrow(/is a counter/);
  });

  it('label values of any text stay one well-formed line (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (v) => {
        const r = new MetricsRegistry();
        r.gauge('elastic_backends', 'b', ['service']).set({ service: v }, 1);
        const { samples } = parseExposition(r.expose());
        expect(samples.get(`elastic_backends{service="${escapeLabelValue(v)}"}`)).toBe(1);
        expect(statsdPart(v)).toMatch(/^[A-Za-z0-9_-]*$/);
      }),
      { numRuns: 300 },
    );
  });

  it('pushes to statsd over real UDP: gauges, counter increases, timings', async () => {
    const sock = createSocket('udp4');
    const got: string[] = [];
    sock.on('message', (m) => got.push(...m.toString('utf8').split('\n')));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const port = sock.address().port;
    const r = new MetricsRegistry();
    const c = r.counter('elastic_reloads_total', 'reloads', ['applier']);
    c.inc({ applier: 'haproxy' }, 2);
    r.gauge('elastic_backends', 'b', ['service']).set({ service: 'web.a' }, 3);
    r.histogram('elastic_sync_duration_seconds', 's', ['applier']).observe({ applier: 'haproxy' }, 0.012);
    const e = new StatsdEmitter(r, { host: '127.0.0.1', port, prefix: 'lb1.elastic', intervalMs: 60_000 });
    try {
      await e.flush();
      await waitUntil(() => got.length >= 3);
      expect(got).toEqual(expect.arrayContaining(['lb1.elastic.reloads_total.haproxy:2|c', 'lb1.elastic.backends.web_a:3|g', 'lb1.elastic.sync_duration_seconds.haproxy:12|ms']));
      got.length = 0;
      c.inc({ applier: 'haproxy' }, 1);
      await e.flush();
      await waitUntil(() => got.some((l) => l.startsWith('lb1.elastic.reloads_total')));
      expect(got).toContain('lb1.elastic.reloads_total.haproxy:1|c');
      expect(got.some((l) => l.includes('|ms'))).toBe(false); // timings are sent once
    } finally {
      await e.close();
      sock.close();
    }
  });
});

async function waitUntil(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the metric table', () => {
  it('names are unique, valid, and each is documented in docs/run.md', async () => {
    const { METRIC } = await import('../../src/engine/run/metrics.js');
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../docs/run.md', import.meta.url), 'utf8');
    const names = Object.values(METRIC).map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(doc, n).toContain(`\`${n}\``);
  });
});
