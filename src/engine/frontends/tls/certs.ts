import { constants } from 'node:fs';
import { mkdir, open, readdir, rm, chmod } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';
import { nullLogger, type Logger } from '../../runtime/logger.js';
import { readIfExists, writeReplacing } from '../files.js';
import { hashText } from '../haproxy/plan.js';
import { parseHostPattern } from '../routes.js';
import { MAX_PEM_BYTES, certCovers, checkPem, type CertInfo } from './pem.js';

/**
 * Certificates from files (issue 16, TLS): a per-service `tls.cert`, a `--cert-dir` of
 * `HOST.pem` files (`_.example.com.pem` for `*.example.com`, `default.pem`), a `--default-cert`.
 * Each is read without following a symlink, validated (pem.ts) and copied into our own run
 * directory (0700, files 0600): the proxy reads a file we own, never one someone can swap
 * under it. A file that is refused keeps its last good copy serving. The crt-list (HAProxy)
 * and the host -> file choice (nginx) are built from the copies.
 */
export interface CertSources {
  readonly certDir?: string;
  readonly defaultCert?: string;
  /** Per-service `tls.cert`: served for that service's hosts (SNI filters). */
  readonly services: ReadonlyArray<{ readonly service: string; readonly file: string; readonly hosts: readonly string[] }>;
}

export interface CertEntry {
  /** Copy file name without .pem: `default`, `host_api.example.com`, `host__.example.com`, `svc_api`. */
  readonly key: string;
  readonly source: string;
  /** SNI names it is served for; [] for the default (and its own names). */
  readonly hosts: readonly string[];
  readonly copy: string;
  readonly info: CertInfo;
}

export interface CertSet {
  /** Default first (HAProxy's first crt-list line is a bind's default certificate). */
  readonly entries: readonly CertEntry[];
  readonly crtList: string;
  readonly crtListText: string;
  /** Entries whose copy was (re)written by this sync: their file changed. */
  readonly changed: readonly CertEntry[];
  /** The crt-list changed (a certificate added or removed): a reload is needed. */
  readonly listChanged: boolean;
}

/** What a cert-dir file name says: a host, the default, or why it is not used. null: not a certificate file (ignored). */
export function certFileHost(name: string): { host: string } | { isDefault: true } | { error: string } | null {
  if (!name.endsWith('.pem') || name.startsWith('.')) return null; // keys, notes, editors' and tools' temp files
  const stem = name.slice(0, -4);
  if (stem === 'default') return { isDefault: true };
  if (stem.includes('*')) return { error: 'write a wildcard as _.example.com.pem' };
  const host = stem.startsWith('_.') ? `*.${stem.slice(2)}` : stem;
  const r = parseHostPattern(host);
  if ('error' in r) return { error: r.error };
  if (r.host !== host) return { error: 'write the host name in lower case, without a trailing dot' };
  return { host };
}

/** Read a certificate file: a regular file, not through a symlink, at most MAX_PEM_BYTES. */
export async function readCertFile(path: string): Promise<{ text: string } | { error: string }> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { error: 'is a symlink: certificate files are read only as regular files (copy the PEM there, as the certbot deploy hook in docs/render.md does)' };
    return { error: `cannot read: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'error')}` };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { error: 'not a regular file' };
    if (st.size > MAX_PEM_BYTES) return { error: `larger than ${MAX_PEM_BYTES} bytes: not a certificate file` };
    return { text: await fh.readFile('utf8') };
  } catch (err) {
    return { error: `cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
  } finally {
    await fh.close();
  }
}

interface Source {
  readonly key: string;
  readonly path: string;
  readonly hosts: readonly string[];
  /** The operator named this file: without any good version of it, TLS cannot be served as asked. */
  readonly required: boolean;
}

const copyKey = (host: string) => `host_${host.replace(/^\*\./, '_.')}`;

export class CertStore {
  /** The last good certificate of each source key (a refused file keeps serving this one). */
  private readonly good = new Map<string, CertInfo>();
  private readonly refusedWith = new Map<string, string>();
  private readonly log: Logger;
  readonly crtList: string;

  /** `write: false` (render --dry-run): the same data, nothing created or copied. */
  constructor(readonly sources: CertSources, readonly dir: string, logger?: Logger, readonly write = true) {
    this.log = logger ?? nullLogger;
    this.crtList = join(dir, 'crt-list');
  }

  private async list(): Promise<Source[]> {
    const out: Source[] = [];
    if (this.sources.defaultCert) out.push({ key: 'default', path: this.sources.defaultCert, hosts: [], required: true });
    for (const s of this.sources.services) out.push({ key: `svc_${s.service}`, path: s.file, hosts: s.hosts, required: true });
    if (this.sources.certDir) {
      let names: string[];
      try {
        names = (await readdir(this.sources.certDir)).sort();
      } catch (err) {
        throw new UserError(`cannot read --cert-dir ${this.sources.certDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check the directory (one HOST.pem per host, default.pem)', ExitCode.config);
      }
      for (const name of names) {
        const what = certFileHost(name);
        if (what === null) continue;
        if ('error' in what) {
          this.refuse(`dir:${name}`, `${printable(name, 80)} in the cert dir`, `not a host name: ${what.error}`);
          continue;
        }
        const path = join(this.sources.certDir, name);
        if ('isDefault' in what) {
          if (!this.sources.defaultCert) out.push({ key: 'default', path, hosts: [], required: false });
        } else out.push({ key: copyKey(what.host), path, hosts: [what.host], required: false });
      }
    }
    return out;
  }

  /** Log a refusal once per file and reason (a resync every minute must not repeat it). */
  private refuse(key: string, what: string, reason: string): void {
    if (this.refusedWith.get(key) === reason) return;
    this.refusedWith.set(key, reason);
    const keeps = this.good.has(key) ? 'the last good certificate keeps serving' : 'not served';
    this.log.warn(`certificate ${what} refused: ${reason}; ${keeps}`);
  }

  private async adoptCopy(key: string, now: Date): Promise<void> {
    const read = await readCertFile(join(this.dir, `${key}.pem`));
    const checked = 'error' in read ? read : checkPem(read.text, now);
    if ('info' in checked) this.good.set(key, checked.info);
  }

  /**
   * Read and validate every source, write changed copies, write the crt-list. Throws (one line)
   * when a file the operator named has never been good, or no certificate is left at all.
   */
  async sync(now = new Date()): Promise<CertSet> {
    if (this.write) {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await chmod(this.dir, 0o700);
    }
    const entries: CertEntry[] = [];
    for (const src of await this.list()) {
      const read = await readCertFile(src.path);
      const checked = 'error' in read ? read : checkPem(read.text, now);
      if ('error' in checked) {
        if (!this.good.has(src.key)) await this.adoptCopy(src.key, now); // a restarted render keeps serving the last good copy
        // A file the operator named that was never good stops the render (one line, the error).
        if (!this.good.has(src.key) && src.required) throw new UserError(`certificate ${printable(src.path, 160)} refused: ${checked.error}`, 'fix the file (PEM: certificate chain then private key); see docs/render.md "TLS"', ExitCode.config);
        this.refuse(src.key, printable(src.path, 160), checked.error);
      } else {
        if (this.refusedWith.delete(src.key) && this.good.get(src.key)?.digest !== checked.info.digest) this.log.info(`certificate ${printable(src.path, 160)} accepted`, { subject: checked.info.subject });
        const hostsNotCovered = src.hosts.filter((h) => !certCovers(checked.info.names, h));
        if (hostsNotCovered.length > 0 && !this.refusedWith.has(`cover:${src.key}`)) {
          this.refusedWith.set(`cover:${src.key}`, 'x');
          this.log.warn(`certificate ${printable(src.path, 160)} does not name ${hostsNotCovered.slice(0, 3).join(', ')}: clients will reject it for those hosts`);
        }
        this.good.set(src.key, checked.info);
      }
      const info = this.good.get(src.key);
      if (info) entries.push({ key: src.key, source: src.path, hosts: src.hosts, copy: join(this.dir, `${src.key}.pem`), info });
    }
    if (entries.length === 0) throw new UserError('no usable certificate for the TLS bind', 'put HOST.pem files and a default.pem in --cert-dir, or pass --default-cert FILE', ExitCode.config);
    // The default first: explicit or default.pem, else the first certificate (sorted by name).
    entries.sort((a, b) => Number(b.key === 'default') - Number(a.key === 'default'));
    const changed: CertEntry[] = [];
    for (const e of entries) {
      const old = await readIfExists(e.copy).catch(() => null);
      if (old === e.info.pem) continue;
      if (this.write) await writeReplacing(e.copy, e.info.pem, 0o600);
      changed.push(e);
    }
    const crtListText = entries.map((e, i) => `${e.copy}${i > 0 && e.hosts.length > 0 ? ` ${e.hosts.join(' ')}` : ''}\n`).join('');
    const listChanged = (await readIfExists(this.crtList).catch(() => null)) !== crtListText;
    if (!this.write) return { entries, crtList: this.crtList, crtListText, changed, listChanged };
    if (listChanged) await writeReplacing(this.crtList, crtListText, 0o600);
    // Copies no source gives any more: not in the new crt-list, so no reload will read them.
    const keep = new Set([...entries.map((e) => basename(e.copy)), 'crt-list']);
    for (const name of await readdir(this.dir)) if (!keep.has(name) && !name.startsWith('.')) await rm(join(this.dir, name), { force: true });
    return { entries, crtList: this.crtList, crtListText, changed, listChanged };
  }
}

/** The certificate nginx serves for a `server_name` (SNI): a service's own, exact, wildcard one label up, else the default. */
export function certForHost(set: CertSet, host: string): CertEntry {
  const [def] = set.entries;
  const svc = set.entries.find((e) => e.key.startsWith('svc_') && e.hosts.includes(host));
  const exact = set.entries.find((e) => e.key.startsWith('host_') && e.hosts.includes(host));
  const wild = host.startsWith('*.') ? undefined : set.entries.find((e) => e.key.startsWith('host_') && e.hosts.includes(`*.${host.slice(host.indexOf('.') + 1)}`));
  return svc ?? exact ?? wild ?? def!;
}

/** What a config must reflect of the certificates (a change of it is a reload): HAProxy the crt-list, nginx every file's content too. */
export function certsHash(set: CertSet, withContent: boolean): string {
  return hashText(set.crtListText + (withContent ? set.entries.map((e) => e.info.digest).join(',') : ''));
}
