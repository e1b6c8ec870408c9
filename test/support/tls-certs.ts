import { execa } from 'execa';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A throwaway CA and certificates made with the openssl binary, for TLS tests. Each `issue`
 * gives a PEM (certificate then key) and its serial; `days: 0` makes one that expires at once.
 */
export class TestCa {
  readonly caPem: string;
  private n = 0;
  constructor(readonly dir: string) {
    this.caPem = join(dir, 'ca.pem');
  }

  async init(): Promise<void> {
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(this.dir, 'ca.key'), '-out', this.caPem, '-days', '2', '-subj', '/CN=elastic test CA']);
  }

  /** A certificate for `names` (the first is the CN), signed by the CA. */
  async issue(names: string[], days = 1): Promise<{ pem: string; cert: string; key: string; serial: string; cn: string }> {
    const base = join(this.dir, `c${++this.n}`);
    await execa('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${names[0]}`]);
    await writeFile(`${base}.ext`, `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
    await execa('openssl', ['x509', '-req', '-in', `${base}.csr`, '-CA', this.caPem, '-CAkey', join(this.dir, 'ca.key'), '-CAcreateserial', '-out', `${base}.crt`, '-days', String(days), '-extfile', `${base}.ext`]);
    const cert = await readFile(`${base}.crt`, 'utf8');
    const key = await readFile(`${base}.key`, 'utf8');
    const serial = (await execa('openssl', ['x509', '-in', `${base}.crt`, '-noout', '-serial'])).stdout.replace('serial=', '').trim();
    return { pem: cert + key, cert, key, serial, cn: names[0]! };
  }
}

/** Replace a file the way a deploy hook should: a temp file renamed over it. */
export async function replaceFile(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp-new`, text, { mode: 0o600 });
  await rename(`${path}.tmp-new`, path);
}

/** The serial and subject of the certificate served for `sni` on 127.0.0.1:port (openssl s_client). */
export async function servedCert(port: number, sni: string): Promise<{ serial: string; subject: string }> {
  const r = await execa('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', sni], { input: '', reject: false, timeout: 5000 });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0] ?? '';
  if (!pem) return { serial: '', subject: '' };
  const x = await execa('openssl', ['x509', '-noout', '-serial', '-subject'], { input: pem });
  return { serial: /serial=(\S+)/.exec(x.stdout)?.[1] ?? '', subject: /subject=(.*)/.exec(x.stdout)?.[1]?.trim() ?? '' };
}

/** curl over https with --resolve and the test CA: status, body, headers, and the served certificate's subject. */
export async function curlTls(host: string, port: number, path: string, caPem: string, extra: string[] = []): Promise<{ status: number; body: string; headers: string; subject: string; exitCode: number }> {
  const r = await execa('curl', ['-sS', '-v', '--max-time', '5', '--resolve', `${host}:${port}:127.0.0.1`, '--cacert', caPem, '-D', '-', ...extra, `https://${host}:${port}${path}`], { reject: false });
  const [headers = '', body = ''] = r.stdout.split(/\r?\n\r?\n/);
  return { status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(headers)?.[1] ?? 0), body: body.trim(), headers, subject: /subject: (.*)/.exec(r.stderr)?.[1]?.trim() ?? '', exitCode: r.exitCode ?? -1 };
}
