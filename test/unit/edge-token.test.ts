import { describe, expect, it } from 'vitest';
import { authPayload, newNonce } from '../../src/engine/edge/protocol.js';
import { authenticateNode, routeToken } from '../../src/engine/edge/token.js';
import { appEnv } from '../../src/engine/edge/node.js';

const edgeToken = Buffer.from('edge-token-0123456789abcdef');
const meta = (route: string) => ({ node: 'n1', route, concurrency: 1, pid: 1 });

describe('per-route node credentials', () => {
  const cases: Array<[string, Buffer, string, 'edge' | 'route' | null]> = [
    ['the edge token, any route', edgeToken, 'api', 'edge'],
    ['a route token for its route', routeToken(edgeToken, 'api'), 'api', 'route'],
    ['a route token for another route', routeToken(edgeToken, 'web'), 'api', null],
    ['a route token of another edge', routeToken(Buffer.from('another-edge-token-0123'), 'api'), 'api', null],
    ['a route token used as an edge token to derive', routeToken(routeToken(edgeToken, 'api'), 'api'), 'api', null],
  ];
  it.each(cases)('%s', (_name, key, route, expected) => {
    const nonce = newNonce();
    const { payload } = authPayload(key, nonce, meta(route));
    const r = authenticateNode(edgeToken, nonce, payload);
    if (expected === null) return expect(r).toBeNull();
    expect(r?.meta).toEqual(meta(route));
    expect(r?.key.equals(expected === 'edge' ? edgeToken : routeToken(edgeToken, route))).toBe(true);
  });

  it('a route token is 64 hex characters (a valid token for a node) and differs per route', () => {
    expect(routeToken(edgeToken, 'api').toString()).toMatch(/^[0-9a-f]{64}$/);
    expect(routeToken(edgeToken, 'api').equals(routeToken(edgeToken, 'web'))).toBe(false);
  });
});

describe("an app's environment", () => {
  it('keeps the rest, drops every ELASTIC_ variable, adds PORT and ELASTIC_ROUTE', () => {
    const env = appEnv({ PATH: '/bin', HOME: '/root', ELASTIC_EDGE_TOKEN: 'secret', ELASTIC_EDGE: '127.0.0.1:1', ELASTIC_INSTANCE: 'i', ELASTIC_ROUTE: 'other', ELASTIC_STATE_DIR: '/x' }, 8080, 'api');
    expect(env).toEqual({ PATH: '/bin', HOME: '/root', PORT: '8080', ELASTIC_ROUTE: 'api' });
  });
});
