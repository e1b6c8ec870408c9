import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { describeError } from '../../errors.js';
import { printable } from '../../model/validate.js';
import { nullLogger, type Logger } from '../../runtime/logger.js';
import { ElbService } from './actions.js';
import { ElbError } from './model.js';
import { verifySignature } from './sigv4.js';
import { errorXml, resultXml } from './xml.js';

/**
 * The ELB-compatible HTTP endpoint: form-encoded POST or GET query, SigV4 checked against the
 * configured keys before anything else is looked at, then one action. Binds 127.0.0.1 unless
 * the config says otherwise.
 */
export const ELB_VERSION = '2012-06-01';
const MAX_BODY = 256 * 1024;

export interface ElbServerOptions {
  address: string;
  port: number;
  region: string;
  keys: ReadonlyArray<{ accessKeyId: string; secret: string }>;
  service: ElbService;
  logger?: Logger;
  /** Called after every request (metrics). */
  onRequest?: (action: string, code: string, ms: number) => void;
  now?: () => Date;
}

export interface RunningElbServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ElbError('ValidationError', 'request body too large', 413));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** application/x-www-form-urlencoded pairs, decoded, in order. */
function formPairs(text: string): Array<[string, string]> {
  if (!text) return [];
  return text.split('&').filter(Boolean).map((p) => {
    const i = p.indexOf('=');
    const dec = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    return i < 0 ? [dec(p), ''] : [dec(p.slice(0, i)), dec(p.slice(i + 1))];
  });
}

export async function startElbServer(opts: ElbServerOptions): Promise<RunningElbServer> {
  const log = opts.logger ?? nullLogger;
  const secrets = new Map(opts.keys.map((k) => [k.accessKeyId, k.secret]));
  const server = createServer((req, res) => {
    const t0 = performance.now();
    const requestId = randomUUID();
    let action = '-';
    const send = (status: number, xml: string, code: string) => {
      res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId, 'content-length': Buffer.byteLength(xml) }).end(xml);
      opts.onRequest?.(action, code, performance.now() - t0);
      log.info('api request', { action, code, status, ms: Math.round(performance.now() - t0) });
    };
    const fail = (err: unknown) => {
      if (err instanceof ElbError) return send(err.status, errorXml(err.code, err.message, requestId), err.code);
      if (err instanceof URIError) return send(400, errorXml('MalformedQueryString', 'malformed percent-encoding', requestId), 'MalformedQueryString');
      log.error('api request failed', { action, error: describeError(err) });
      return send(500, errorXml('InternalFailure', 'The request processing has failed because of an unknown error.', requestId, 'Receiver'), 'InternalFailure');
    };
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const body = await readBody(req);
      if (req.method !== 'GET' && req.method !== 'POST') throw new ElbError('InvalidHttpRequest', 'use GET or POST', 405);
      const query = formPairs(url.search.slice(1));
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
      const auth = verifySignature({ method: req.method, path: url.pathname, query, headers, body }, { secrets, region: opts.region, service: 'elasticloadbalancing', now: opts.now?.() });
      const form = req.method === 'POST' && (headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded') ? formPairs(body.toString('utf8')) : [];
      const params = new Map([...query, ...form]);
      action = printable(params.get('Action') ?? '-', 60);
      if (!auth.ok) throw new ElbError(auth.code, auth.message, auth.code === 'IncompleteSignature' ? 400 : 403);
      if (!params.has('Action')) throw new ElbError('MissingAction', 'The request must contain the parameter Action');
      if (params.get('Version') !== ELB_VERSION) throw new ElbError('InvalidParameterValue', `Version must be ${ELB_VERSION}`);
      const result = await opts.service.handle(params.get('Action')!, params);
      send(200, resultXml(params.get('Action')!, result, requestId), 'OK');
    })().catch(fail);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => resolve());
  });
  server.unref();
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}
