import { afterEach, describe, expect, it } from 'vitest';
import React from 'react';
import { render, cleanup } from 'ink-testing-library';
import { TopApp } from '../../src/ui/top/App.js';
import type { PendingAction } from '../../src/ui/top/keys.js';
import { TopStore } from '../../src/engine/top/store.js';
import { adaptSnapshot } from '../../src/engine/top/adapters.js';
import type { Snapshot } from '../../src/engine/runtime/status.js';
import { fixtureSnapshot, type FixtureKind } from '../fixtures/top/content.js';

process.env.TZ = 'UTC';
process.env.LANG = 'C.UTF-8';
const T0 = Date.parse('2025-01-01T00:00:00.000Z');

/** A store holding two snapshots (t=0 and t=1s) of each kind: rates are exact. */
function fixtureStore(backends = 3, kinds: FixtureKind[] = ['map-image', 'render', 'edge', 'deploy']): TopStore {
  const store = new TopStore();
  for (const t of [0, 1]) for (const kind of kinds) store.ingest(adaptSnapshot(fixtureSnapshot(kind, { backends, t }) as Snapshot), T0 + t * 1000);
  store.state(T0 + 1000);
  return store;
}

const lines = (frame: string | undefined) => (frame ?? '').split('\n').map((l) => l.trimEnd());

async function until(get: () => string | undefined, ok: (frame: string) => boolean, what: string): Promise<string[]> {
  const end = Date.now() + 3000;
  for (;;) {
    const f = get() ?? '';
    if (ok(f)) return lines(f);
    if (Date.now() > end) throw new Error(`frame never showed ${what}:\n${f}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function mount(store = fixtureStore(), props: Partial<React.ComponentProps<typeof TopApp>> = {}) {
  const actions: PendingAction[] = [];
  const app = render(
    <TopApp store={store} intervalMs={1000} color={false} width={80} height={23} onAction={async (p) => (actions.push(p), `${p.action} ok`)} {...props} />,
  );
  const press = async (keys: string, expectText: string | RegExp) => {
    for (const k of keys.startsWith('\u001b') ? [keys] : keys) {
      app.stdin.write(k);
      await new Promise((r) => setTimeout(r, 2)); // one key per read, like a human
    }
    return until(app.lastFrame, (f) => (typeof expectText === 'string' ? f.includes(expectText) : expectText.test(f)), String(expectText));
  };
  return { app, actions, press };
}

afterEach(() => cleanup());

describe('top dashboard (ink-testing-library, 80x23 frame)', () => {
  it('overview: services of every kind with rates, connections and queues', async () => {
    const { app } = mount();
    const f = await until(app.lastFrame, (x) => x.includes('SERVICE'), 'the overview');
    expect(f).toHaveLength(23);
    expect(f.slice(0, 7)).toEqual([
      'elastic top  4 sources  4 services  9 backends                every 1s  00:00:01',
      '[1 Overview]  2 Backends   3 Timeline                      sort service asc  1/4',
      '  SERVICE      KIND      BACKENDS     RATE/S  BYTES/S  CONNS QUEUED WAIT99  REPL',
      '> api          edge             1     50 req        -      7      3  250ms    1n',
      '  shop         deploy         1/2          -        -      -      -      -   2/2',
      '  tcp-18710    map-image        3     60 pkt     5.9K      -      -      -     -',
      '  web          render         2/3    6.0 req        -      3      2      -     -',
    ]);
    expect(f[18]).toMatch(/^-- recent events -+$/);
    expect(f[22]).toBe('q quit  ? help  / filter  s sort  r reverse  Enter drill  +/- scale');
  });

  it('backends view: address, source, health, pkt/s, bytes/s, sessions, queued', async () => {
    const { press } = mount();
    const f = await press('2', '[2 Backends]');
    expect(f.slice(2, 12)).toEqual([
      '  ADDRESS         SERVICE     SOURCE HEALTH     PKT/S BYTES/S  SESS QUEUE  REQ/S',
      '> 127.0.0.1:18712 api         edge   -              -       -     7     -     50',
      '  198.18.0.21:80  shop        docker healthy        -       -     -     -      -',
      '  198.18.0.22:80  shop        docker starting       -       -     -     -      -',
      '  198.18.1.1:80   tcp-18710   kernel healthy       10   1000B     -     -      -',
      '  198.18.1.2:80   tcp-18710   kernel unhealthy     20    2.0K     -     -      -',
      '  198.18.1.3:80   tcp-18710   kernel healthy       30    2.9K     -     -      -',
      '  198.18.1.1:80   web         proxy  healthy        -       -     0     2    1.0',
      '  198.18.1.2:80   web         proxy  unhealthy      -       -     1     0    2.0',
      '  198.18.1.3:80   web         proxy  healthy        -       -     2     0    3.0',
    ]);
  });

  it('1,000 backends: only the visible rows are drawn, and the window follows the cursor', async () => {
    const { app, press } = mount(fixtureStore(1000, ['map-image']));
    let f = await press('2', '1/1000');
    expect(f.filter((l) => /^[> ] 198\.18\./.test(l))).toHaveLength(15);
    f = await press('G', '1000/1000');
    expect(f.some((l) => l.startsWith('> 198.18.4.250:80'))).toBe(true);
    f = await press('kkk', '997/1000');
    expect(f.some((l) => l.startsWith('> 198.18.4.247:80'))).toBe(true);
    f = await press('g', '1/1000');
    expect(f[3]).toMatch(/^> 198\.18\.1\.1:80 /);
    expect(app.lastFrame()!.split('\n')).toHaveLength(23);
  });

  it('j/k and arrows move; Enter drills into the service; Esc goes back', async () => {
    const { app, press } = mount();
    await until(app.lastFrame, (x) => x.includes('> api'), 'cursor on api');
    await press('jj', '> tcp-18710');
    await press('\u001b[A', '> shop'); // up arrow
    await press('\u001b[B', '> tcp-18710'); // down arrow
    const f = await press('\r', '[> tcp-18710]');
    expect(f[2]).toBe('map-image mapping  source map-image.tcp-18710  image elastic-test/web:1');
    expect(f[3]).toBe('port 18710/tcp  to port 80  dataplane nft  syncs 3  last sync ms 1.5');
    expect(f[4]).toMatch(/^-- last 5 minutes -+$/);
    expect(f[5]).toMatch(/^pkt\/s {9}60 {2} +█$/);
    expect(f[6]).toMatch(/^bytes\/s {5}5\.9K {2} +█$/);
    expect(f.slice(9, 13)).toEqual([
      '  ADDRESS          SOURCE HEALTH     PKT/S BYTES/S  SESS QUEUE  REQ/S LAST 60s',
      '> 198.18.1.1:80    kernel healthy       10   1000B     -     -      -          █',
      '  198.18.1.2:80    kernel unhealthy     20    2.0K     -     -      -          █',
      '  198.18.1.3:80    kernel healthy       30    2.9K     -     -      -          █',
    ]);
    await press('\u001b', '[1 Overview]');
  });

  it('/ filters (all words, field:value, !word); Esc clears', async () => {
    const { press } = mount();
    await press('2', '[2 Backends]');
    let f = await press('/health:unhealthy', '/health:unhealthy_');
    f = await press('\r', 'filter: health:unhealthy');
    expect(f.filter((l) => /^[> ] \d/.test(l))).toEqual([
      '> 198.18.1.2:80   tcp-18710   kernel unhealthy     20    2.0K     -     -      -',
      '  198.18.1.2:80   web         proxy  unhealthy      -       -     1     0    2.0',
    ]);
    f = await press('\u001b', /sort service asc {2}1\/9/);
    await press('/service:web !198.18.1.3\r', 'filter: service:web !198.18.1.3');
    f = lines((await press('', 'filter:')).join('\n'));
    expect(f.filter((l) => /^[> ] \d/.test(l)).map((l) => l.slice(2, 30).trim())).toEqual(['198.18.1.1:80   web', '198.18.1.2:80   web']);
  });

  it('s cycles the sort column, r reverses it', async () => {
    const { press } = mount();
    let f = await press('s', 'sort kind asc');
    expect(f.slice(3, 7).map((l) => l.slice(2, 14).trim())).toEqual(['shop', 'api', 'tcp-18710', 'web']);
    f = await press('ss', 'sort rate asc');
    expect(f.slice(3, 7).map((l) => l.slice(2, 14).trim())).toEqual(['web', 'api', 'tcp-18710', 'shop']); // no value sorts last
    f = await press('r', 'sort rate desc');
    expect(f.slice(3, 7).map((l) => l.slice(2, 14).trim())).toEqual(['tcp-18710', 'api', 'web', 'shop']);
  });

  it('? shows the help; any key closes it', async () => {
    const { press } = mount();
    const f = await press('?', 'Keys');
    expect(f.slice(2, 6)).toEqual([
      'Keys',
      '  up/down, j/k     move            PgUp/PgDn, g/G  page, first/last',
      '  1 2 3, Tab       overview, backends, timeline',
      '  Enter            drill down into the service under the cursor',
    ]);
    await press('x', 'SERVICE');
  });

  it('drain asks first; y sends it to the socket that owns the backend, n cancels', async () => {
    const { press, actions } = mount();
    await press('2', '[2 Backends]');
    await press('jjjj', '> 198.18.1.2:80');
    let f = await press('d', '[y/N]');
    expect(f[22]).toBe('Drain 198.18.1.2:80 (tcp-18710 in map-image.tcp-18710): no new connection~ [y/N]');
    await press('n', 'q quit');
    expect(actions).toEqual([]);
    await press('x', 'Disable 198.18.1.2:80');
    f = await press('y', 'drain ok');
    expect(actions).toEqual([{ sourceId: 'map-image.tcp-18710', action: 'drain', args: { address: '198.18.1.2', port: 80, service: 'tcp-18710', backend: 'docker:abc000000001', timeoutMs: 0 }, question: expect.stringMatching(/^Disable/) }]);
    expect(f[22]).toBe('drain ok');
  });

  it('+ on a deploy asks to scale it by one replica', async () => {
    const { press, actions } = mount();
    await press('j', '> shop');
    await press('+', 'Scale shop from 2 to 3 replica(s)? [y/N]');
    await press('\r', 'scale ok');
    expect(actions.map((a) => [a.sourceId, a.action, a.args])).toEqual([['deploy.main', 'scale', { service: 'shop', replicas: 3 }]]);
  });

  it('timeline: every source\'s events, newest first', async () => {
    const { press } = mount();
    const f = await press('3', '[3 Timeline]');
    expect(f[2]).toBe('  TIME     TYPE     SOURCE             MESSAGE');
    expect(f[3]).toMatch(/^> 00:00:00 (added|source) /);
    expect(f.filter((l) => l.includes(' source '))).toHaveLength(4);
    expect(f.filter((l) => l.includes(' added '))).toHaveLength(4);
  });

  it('narrow terminal: low-priority columns go, rows still fit', async () => {
    const { app } = mount(fixtureStore(), { width: 50, height: 12 });
    const f = await until(app.lastFrame, (x) => x.includes('SERVICE'), 'overview');
    expect(f).toHaveLength(12);
    expect(Math.max(...f.map((l) => l.length))).toBeLessThanOrEqual(50);
    expect(f[2]).toBe('  SERVICE            KIND      BACKENDS     RATE/S');
  });

  it('NO_COLOR (color=false): no escape sequences in the frame', async () => {
    const { app } = mount();
    const f = await until(app.lastFrame, (x) => x.includes('SERVICE'), 'overview');
    expect(f.join('\n')).not.toMatch(/\u001b\[/);
  });
});
