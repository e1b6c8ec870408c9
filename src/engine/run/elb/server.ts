import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { describeError } from '../../errors.js';
import { nullLogger, type Logger } from '../../runtime/logger.js';
import { ACTIONS, ElbService } from './actions.js';
import { ElbError } from './model.js';
import { verifySignature } from './sigv4.js';
import { errorXml, resultXml } from './xml.js';

/**
 * The ELB-compatible HTTP endpoint: form-encoded POST or GET query, SigV4 checked against the
 * configured keys before anything else is looked at, then one action. Binds 127.0.0.1 unless
 * the config says otherwise.
 */
export const ELB_VERSION = '2012-06-01';
/**
 * Limits (not configurable): a client that is slow or lies about its body cannot hold a
 * connection or memory for long. Headers within 10 s, the body within 10 s of them, at most
 * 256 KiB of body (a larger Content-Length is answered 413 at once), idle keep-alive 5 s, at
 * most 256 connections (more are closed on accept).
 */
export const API_LIMITS = { maxBody: 256 * 1024, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, keepAliveTimeoutMs: 5000, maxConnections: 256 } as const;
/** A refused body is read and discarded (so the client sees the answer, not a reset) up to this. */
const DRAIN_MAX = 32 * 1024 * 1024;

/** Metric label for an action: one of ours, else a fixed value (callers choose the text). */
export const actionLabel = (action: string | undefined): string => (action !== undefined && (ACTIONS as readonly string[]).includes(action) ? action : 'unknown');

export interface ElbServerOptions {
  address: string;
  port: number;
  region: string;
  keys: ReadonlyArray<{ accessKeyId: string; secret: string }>;
  service: ElbService;
  logger?: Logger;
  /** Called once per request (metrics): action is actionLabel(), code `OK`, an AWS code or `Aborted`. */
  onRequest?: (action: string, code: string, ms: number) => void;
  now?: () => Date;
  /** Tests shorten these. */
  limits?: Partial<ApiLimits>;
}

export type ApiLimits = { -readonly [K in keyof typeof API_LIMITS]: number };

export interface RunningElbServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

class Aborted extends Error {}
const tooLarge = (max: number) => new ElbError('ValidationError', `request body too large (at most ${max} bytes)`, 413);

function readBody(req: IncomingMessage, L: ApiLimits): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > L.maxBody) return Promise.reject(tooLarge(L.maxBody));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => reject(new ElbError('RequestTimeout', `the request body did not arrive within ${L.bodyTimeoutMs / 1000} s`, 408)), L.bodyTimeoutMs);
    const done = () => clearTimeout(timer);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > L.maxBody) {
        done();
        reject(tooLarge(L.maxBody));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => (done(), resolve(Buffer.concat(chunks))));
    req.on('close', () => (done(), req.complete ? undefined : reject(new Aborted())));
    req.on('error', (err) => (done(), reject(err)));
  });
}

/** After an early answer: discard what the client still sends (bounded), then close. */
function discardRest(req: IncomingMessage, L: ApiLimits): void {
  if (req.complete) return;
  let drained = 0;
  const stop = setTimeout(() => req.socket.destroy(), L.bodyTimeoutMs);
  req.removeAllListeners('data');
  req.on('data', (c: Buffer) => {
    drained += c.length;
    if (drained > DRAIN_MAX) req.socket.destroy();
  });
  req.on('close', () => clearTimeout(stop));
  req.resume();
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
  const L: ApiLimits = { ...API_LIMITS, ...opts.limits };
  const secrets = new Map(opts.keys.map((k) => [k.accessKeyId, k.secret]));
  const server = createServer({ headersTimeout: L.headersTimeoutMs, requestTimeout: L.headersTimeoutMs + L.bodyTimeoutMs, keepAliveTimeout: L.keepAliveTimeoutMs, connectionsCheckingInterval: 1000 }, (req, res) => {
    const t0 = performance.now();
    const requestId = randomUUID();
    let action = 'unknown';
    let counted = false;
    const count = (code: string) => {
      if (counted) return;
      counted = true;
      opts.onRequest?.(action, code, performance.now() - t0);
    };
    // The client went away before its answer: counted once as Aborted, not logged one by one.
    res.on('close', () => {
      if (!res.writableFinished) count('Aborted');
    });
    const send = (status: number, xml: string, code: string) => {
      if (res.destroyed) return;
      const close = status === 408 || status === 413;
      res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId, 'content-length': Buffer.byteLength(xml), ...(close ? { connection: 'close' } : {}) }).end(xml);
      if (close) discardRest(req, L);
      count(code);
      log.info('api request', { action, code, status, ms: Math.round(performance.now() - t0) });
    };
    const fail = (err: unknown) => {
      if (err instanceof Aborted || res.destroyed) return;
      if (err instanceof ElbError) return send(err.status, errorXml(err.code, err.message, requestId), err.code);
      if (err instanceof URIError) return send(400, errorXml('MalformedQueryString', 'malformed percent-encoding', requestId), 'MalformedQueryString');
      log.error('api request failed', { action, error: describeError(err) });
      return send(500, errorXml('InternalFailure', 'The request processing has failed because of an unknown error.', requestId, 'Receiver'), 'InternalFailure');
    };
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const body = await readBody(req, L);
      if (req.method !== 'GET' && req.method !== 'POST') throw new ElbError('InvalidHttpRequest', 'use GET or POST', 405);
      const query = formPairs(url.search.slice(1));
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
      const auth = verifySignature({ method: req.method, path: url.pathname, query, headers, body }, { secrets, region: opts.region, service: 'elasticloadbalancing', now: opts.now?.() });
      const form = req.method === 'POST' && (headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded') ? formPairs(body.toString('utf8')) : [];
      const params = new Map([...query, ...form]);
      // A label from a fixed set: unsigned callers must not create metric series (or statsd keys).
      action = actionLabel(params.get('Action'));
      if (!auth.ok) throw new ElbError(auth.code, auth.message, auth.code === 'IncompleteSignature' ? 400 : 403);
      if (!params.has('Action')) throw new ElbError('MissingAction', 'The request must contain the parameter Action');
      if (params.get('Version') !== ELB_VERSION) throw new ElbError('InvalidParameterValue', `Version must be ${ELB_VERSION}`);
      const result = await opts.service.handle(params.get('Action')!, params);
      send(200, resultXml(params.get('Action')!, result, requestId), 'OK');
    })().catch(fail);
  });
  server.maxConnections = L.maxConnections;
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
