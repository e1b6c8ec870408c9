import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * AWS Signature Version 4 verification, for the ELB-compatible API: the request the client
 * signed is rebuilt (canonical request -> string to sign -> HMAC chain from the secret) and the
 * signatures compared in constant time. Both forms are accepted: the Authorization header
 * (what the SDKs send) and query-string signing (X-Amz-Algorithm=..., presigned GETs).
 */
export interface SignedRequest {
  readonly method: string;
  /** Path only (no query), as received. */
  readonly path: string;
  /** Query parameters as received (decoded), in order. */
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** Header names lower-case; repeated headers joined by ",". */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer;
}

export type AuthFailure = { ok: false; code: 'MissingAuthenticationToken' | 'InvalidClientTokenId' | 'SignatureDoesNotMatch' | 'IncompleteSignature'; message: string };
export type AuthResult = { ok: true; accessKeyId: string } | AuthFailure;

export interface VerifyOptions {
  /** Secret per access key id. */
  readonly secrets: ReadonlyMap<string, string>;
  readonly region: string;
  readonly service: string;
  readonly now?: Date;
  readonly maxSkewMs?: number;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

/** RFC 3986 encoding as SigV4 wants it (unreserved characters kept, everything else %XX). */
export function uriEncode(s: string, keepSlash = false): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function canonicalQuery(query: ReadonlyArray<readonly [string, string]>): string {
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** Non-S3 services normalise the path and encode each segment (already-decoded input is re-encoded). */
export function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  const normal = `/${segments.join('/')}${path.endsWith('/') && segments.length ? '/' : ''}`;
  return uriEncode(uriEncode(decodeSafe(normal), true), true);
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function canonicalRequest(req: SignedRequest, signedHeaders: readonly string[], payloadHash: string, excludeQuery?: string): string {
  const headers = signedHeaders.map((h) => `${h}:${(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  return [req.method.toUpperCase(), canonicalPath(req.path), canonicalQuery(req.query.filter(([k]) => k !== excludeQuery)), headers, signedHeaders.join(';'), payloadHash].join('\n');
}

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

/** Sign a request (tests, and a client for operators' scripts): returns the Authorization header. */
export function sign(req: SignedRequest, o: { accessKeyId: string; secret: string; region: string; service: string; amzDate: string; signedHeaders: readonly string[] }): string {
  const date = o.amzDate.slice(0, 8);
  const scope = `${date}/${o.region}/${o.service}/aws4_request`;
  const canonical = canonicalRequest(req, [...o.signedHeaders].sort(), sha256Hex(req.body));
  const signature = hmac(signingKey(o.secret, date, o.region, o.service), stringToSign(o.amzDate, scope, canonical)).toString('hex');
  return `${ALGORITHM} Credential=${o.accessKeyId}/${scope}, SignedHeaders=${[...o.signedHeaders].sort().join(';')}, Signature=${signature}`;
}

interface Parsed {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  fromQuery: boolean;
}

function parseAuth(req: SignedRequest): Parsed | AuthFailure | null {
  const q = new Map(req.query);
  const header = req.headers.authorization;
  let credential: string | undefined;
  let signed: string | undefined;
  let signature: string | undefined;
  let amzDate: string | undefined;
  let fromQuery = false;
  if (header !== undefined) {
    if (!header.startsWith(`${ALGORITHM} `)) return { ok: false, code: 'IncompleteSignature', message: `Unsupported authorization type; use ${ALGORITHM}` };
    const fields = new Map(
      header
        .slice(ALGORITHM.length + 1)
        .split(',')
        .map((p) => p.trim())
        .map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] as const),
    );
    credential = fields.get('Credential');
    signed = fields.get('SignedHeaders');
    signature = fields.get('Signature');
    amzDate = req.headers['x-amz-date'] ?? req.headers.date;
  } else if (q.has('X-Amz-Algorithm')) {
    if (q.get('X-Amz-Algorithm') !== ALGORITHM) return { ok: false, code: 'IncompleteSignature', message: `Unsupported X-Amz-Algorithm; use ${ALGORITHM}` };
    credential = q.get('X-Amz-Credential');
    signed = q.get('X-Amz-SignedHeaders');
    signature = q.get('X-Amz-Signature');
    amzDate = q.get('X-Amz-Date');
    fromQuery = true;
  } else return null;
  if (!credential || !signed || !signature || !amzDate) return { ok: false, code: 'IncompleteSignature', message: 'Authorization must include Credential, SignedHeaders and Signature, and the request X-Amz-Date' };
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request') return { ok: false, code: 'IncompleteSignature', message: 'Credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request' };
  if (!/^\d{8}T\d{6}Z$/.test(amzDate)) return { ok: false, code: 'IncompleteSignature', message: 'X-Amz-Date must be YYYYMMDDTHHMMSSZ' };
  return { accessKeyId: parts[0]!, date: parts[1]!, region: parts[2]!, service: parts[3]!, signedHeaders: signed.split(';'), signature, amzDate, fromQuery };
}

function amzDateToMs(d: string): number {
  return Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15));
}

export function verifySignature(req: SignedRequest, o: VerifyOptions): AuthResult {
  const p = parseAuth(req);
  if (p === null) return { ok: false, code: 'MissingAuthenticationToken', message: 'Request is missing Authentication Token' };
  if ('ok' in p) return p;
  const secret = o.secrets.get(p.accessKeyId);
  if (secret === undefined) return { ok: false, code: 'InvalidClientTokenId', message: 'The security token included in the request is invalid.' };
  const now = (o.now ?? new Date()).getTime();
  const at = amzDateToMs(p.amzDate);
  const skew = o.maxSkewMs ?? 15 * 60_000;
  if (!(Math.abs(now - at) <= skew)) {
    return { ok: false, code: 'SignatureDoesNotMatch', message: `Signature expired: ${p.amzDate} is not within ${skew / 60_000} minutes of the server time` };
  }
  if (p.fromQuery) {
    const expires = Number(new Map(req.query).get('X-Amz-Expires') ?? 900);
    if (!(expires >= 1 && expires <= 604_800) || now > at + expires * 1000) return { ok: false, code: 'SignatureDoesNotMatch', message: 'Signature expired (X-Amz-Expires)' };
  }
  if (p.date !== p.amzDate.slice(0, 8) || p.region !== o.region || p.service !== o.service) {
    return { ok: false, code: 'SignatureDoesNotMatch', message: `Credential should be scoped to ${p.amzDate.slice(0, 8)}/${o.region}/${o.service}/aws4_request` };
  }
  if (!p.signedHeaders.includes('host')) return { ok: false, code: 'SignatureDoesNotMatch', message: 'SignedHeaders must include host' };
  const payloadHash = req.headers['x-amz-content-sha256'] && !p.fromQuery ? req.headers['x-amz-content-sha256'] : sha256Hex(req.body);
  if (!p.fromQuery && payloadHash !== sha256Hex(req.body) && payloadHash !== 'UNSIGNED-PAYLOAD') return { ok: false, code: 'SignatureDoesNotMatch', message: 'x-amz-content-sha256 does not match the body' };
  const canonical = canonicalRequest(req, p.signedHeaders, payloadHash, p.fromQuery ? 'X-Amz-Signature' : undefined);
  const scope = `${p.date}/${p.region}/${p.service}/aws4_request`;
  const expected = hmac(signingKey(secret, p.date, p.region, p.service), stringToSign(p.amzDate, scope, canonical));
  const given = /^[0-9a-f]{64}$/.test(p.signature) ? Buffer.from(p.signature, 'hex') : Buffer.alloc(32);
  if (!timingSafeEqual(expected, given) || !/^[0-9a-f]{64}$/.test(p.signature)) {
    return { ok: false, code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.' };
  }
  return { ok: true, accessKeyId: p.accessKeyId };
}
