import { X509Certificate, createPrivateKey, createHash } from 'node:crypto';

/**
 * A certificate file as HAProxy and nginx take it: PEM, the certificate chain (leaf first) and
 * the private key in one file. Checked with node:crypto before it reaches a proxy; every refusal
 * is one line (docs/render.md "TLS", refusal reasons). The key is a secret: it is never logged,
 * and no message here quotes the file's text.
 */
export interface CertInfo {
  /** The leaf's subject and names, for logs and status (no secret in them). */
  readonly subject: string;
  readonly names: readonly string[];
  readonly notAfter: string;
  readonly serial: string;
  /** sha256 of the normalized PEM (certificate and key): "this file changed". */
  readonly digest: string;
  /** The chain then the key, blank lines and anything outside the PEM blocks removed (HAProxy's runtime payload ends at a blank line). */
  readonly pem: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----/g;
const KEY_BLOCK = /-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n:,-]+?-----END \1?PRIVATE KEY-----/g;
/** Certificate files are small; a larger one is not a certificate file. */
export const MAX_PEM_BYTES = 1 << 20;

const tidy = (block: string) => block.replace(/\r/g, '').split('\n').filter((l) => l.trim() !== '').join('\n');

/** Validate a PEM (cert chain + key) or say in one line why it is refused. */
export function checkPem(text: string, now = new Date()): { info: CertInfo } | { error: string } {
  if (text.length > MAX_PEM_BYTES) return { error: `larger than ${MAX_PEM_BYTES} bytes: not a certificate file` };
  const certs = text.match(CERT_BLOCK) ?? [];
  const keys = text.match(KEY_BLOCK) ?? [];
  if (certs.length === 0) return { error: 'not PEM: no "BEGIN CERTIFICATE" block (want the certificate chain and the private key in one file)' };
  if (keys.length === 0) return { error: 'no private key in the file (want the certificate chain and the private key in one PEM file)' };
  if (keys.length > 1) return { error: 'more than one private key in the file' };
  if (keys[0]!.includes('ENCRYPTED') || /Proc-Type: 4,ENCRYPTED/.test(keys[0]!)) return { error: 'the private key is encrypted (a proxy would ask for a passphrase): store it unencrypted, mode 0600' };
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certs[0]!);
    for (const c of certs.slice(1)) new X509Certificate(c);
  } catch {
    return { error: 'a certificate block is not a valid X.509 certificate' };
  }
  let key;
  try {
    key = createPrivateKey(keys[0]!);
  } catch {
    return { error: 'the private key block cannot be read' };
  }
  if (!leaf.checkPrivateKey(key)) return { error: 'the private key does not match the certificate (the first certificate of the file must be the one for the key)' };
  const from = new Date(leaf.validFrom);
  const to = new Date(leaf.validTo);
  if (to.getTime() <= now.getTime()) return { error: `expired on ${to.toISOString()}` };
  if (from.getTime() > now.getTime()) return { error: `not valid before ${from.toISOString()}` };
  const pem = `${[...certs, keys[0]!].map(tidy).join('\n')}\n`;
  const names = (leaf.subjectAltName ?? '').split(/,\s*/).filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4).toLowerCase());
  return {
    info: {
      subject: leaf.subject.replace(/\n/g, ', '),
      names,
      notAfter: to.toISOString(),
      serial: leaf.serialNumber.toUpperCase(),
      digest: createHash('sha256').update(pem).digest('hex'),
      pem,
    },
  };
}

/** Whether a certificate for `names` (its SANs) covers a host pattern: exact, or `*.x` for one label below x. */
export function certCovers(names: readonly string[], host: string): boolean {
  if (names.includes(host)) return true;
  if (host.startsWith('*.')) return false;
  const parent = host.slice(host.indexOf('.') + 1);
  return host.includes('.') && names.includes(`*.${parent}`);
}
