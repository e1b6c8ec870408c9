/**
 * Reading just enough of a client's first bytes to route it: the HTTP request head (Host) or a
 * TLS ClientHello (SNI, for TLS passthrough). Pure functions over untrusted bytes: every length
 * is checked, nothing is trusted, the result host is normalised (lower case, no port) and
 * restricted to host name characters, so it is safe as a map key and in a log line.
 */
export type Sniff =
  | { state: 'incomplete' }
  | { state: 'ok'; host: string | null }
  | { state: 'bad'; status: 400 | 431; reason: string };

const INCOMPLETE: Sniff = { state: 'incomplete' };
const REQUEST_LINE = /^[A-Z]{1,20} [\x21-\x7e]{1,8192} HTTP\/1\.[01]$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function sniffHttp(buf: Buffer, maxBytes: number): Sniff {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0 || end + 4 > maxBytes) {
    return buf.length >= maxBytes ? { state: 'bad', status: 431, reason: `request head over ${maxBytes} bytes` } : INCOMPLETE;
  }
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  if (!REQUEST_LINE.test(lines[0]!)) return { state: 'bad', status: 400, reason: 'not an HTTP/1 request line' };
  let host: string | null = null;
  let seen = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0 || !HEADER_NAME.test(line.slice(0, colon))) return { state: 'bad', status: 400, reason: 'malformed header line' };
    if (colon === 4 && line.slice(0, 4).toLowerCase() === 'host') {
      seen++;
      host = normaliseHost(line.slice(5).trim());
      if (host === null) return { state: 'bad', status: 400, reason: 'invalid Host header' };
    }
  }
  if (seen > 1) return { state: 'bad', status: 400, reason: 'more than one Host header' };
  return { state: 'ok', host };
}

/** `Example.COM:8080` -> `example.com`; `[::1]:80` -> `[::1]`; null when not a host name. */
export function normaliseHost(raw: string): string | null {
  let h = raw.toLowerCase();
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    if (close < 0 || !/^\[[0-9a-f:.]{2,45}\]$/.test(h.slice(0, close + 1))) return null;
    const rest = h.slice(close + 1);
    if (rest && !/^:\d{1,5}$/.test(rest)) return null;
    return h.slice(0, close + 1);
  }
  const colon = h.indexOf(':');
  if (colon >= 0) {
    if (!/^:\d{1,5}$/.test(h.slice(colon))) return null;
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return /^[a-z0-9_](?:[a-z0-9_.-]{0,252})$/.test(h) && !h.includes('..') ? h : null;
}

/** Route of a host: exact name first, then `*.parent` wildcards from the longest parent. */
export function matchHost(host: string | null, routes: ReadonlyMap<string, string>, fallback?: string): string | undefined {
  if (host !== null) {
    const exact = routes.get(host);
    if (exact !== undefined) return exact;
    for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
      const wild = routes.get(`*${host.slice(dot)}`);
      if (wild !== undefined) return wild;
    }
  }
  return fallback;
}

/** SNI from a TLS ClientHello in the first record (16 KiB is enough for any real hello). */
export function sniffTls(buf: Buffer, maxBytes: number): Sniff {
  const bad = (reason: string): Sniff => ({ state: 'bad', status: 400, reason });
  if (buf.length < 5) return INCOMPLETE;
  if (buf[0] !== 0x16 || buf[1] !== 0x03) return bad('not a TLS handshake');
  const recLen = buf.readUInt16BE(3);
  if (recLen + 5 > maxBytes) return { state: 'bad', status: 431, reason: `TLS record over ${maxBytes} bytes` };
  if (buf.length < 5 + recLen) return INCOMPLETE;
  const rec = buf.subarray(5, 5 + recLen);
  let p = 0;
  const need = (n: number) => p + n <= rec.length;
  if (!need(4) || rec[0] !== 0x01) return bad('not a ClientHello');
  p = 4 + 2 + 32; // handshake header, client_version, random
  if (!need(1)) return bad('truncated ClientHello');
  p += 1 + rec[p]!; // session id
  if (!need(2)) return bad('truncated ClientHello');
  p += 2 + rec.readUInt16BE(p); // cipher suites
  if (!need(1)) return bad('truncated ClientHello');
  p += 1 + rec[p]!; // compression methods
  if (p === rec.length) return { state: 'ok', host: null }; // no extensions
  if (!need(2)) return bad('truncated ClientHello');
  const extEnd = p + 2 + rec.readUInt16BE(p);
  p += 2;
  if (extEnd > rec.length) return bad('truncated extensions');
  while (p + 4 <= extEnd) {
    const type = rec.readUInt16BE(p);
    const len = rec.readUInt16BE(p + 2);
    p += 4;
    if (p + len > extEnd) return bad('truncated extension');
    if (type === 0 && len >= 5 && rec[p + 2] === 0) {
      const nameLen = rec.readUInt16BE(p + 3);
      if (5 + nameLen > len) return bad('truncated server name');
      const host = normaliseHost(rec.toString('latin1', p + 5, p + 5 + nameLen));
      return host === null || host.startsWith('[') ? bad('invalid server name') : { state: 'ok', host };
    }
    p += len;
  }
  return { state: 'ok', host: null };
}
