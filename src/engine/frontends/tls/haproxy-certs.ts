import { ExitCode, UserError } from '../../errors.js';
import { printable } from '../../model/validate.js';
import { sendCommand } from '../haproxy/runtime.js';
import type { CertEntry } from './certs.js';

/**
 * Certificate rotation without a reload (HAProxy >= 2.2 runtime API, management guide):
 *   set ssl cert <file> <<\n<PEM>\n\n     opens a transaction with the new chain and key
 *   commit ssl cert <file>                  swaps it in for new handshakes
 * <file> is the name the certificate was loaded under (our copy's path in the crt-list). The
 * PEM goes over the unix socket only: never in argv or a log. Verified with `show ssl cert`.
 */
const refused = (what: string, answer: string) => new UserError(`HAProxy refused ${what}: ${printable(answer.trim().split('\n').slice(-1)[0] ?? '', 160)}`, 'the certificate is applied by a reload instead', ExitCode.refused);

/** Put one changed certificate in force through the runtime API and check HAProxy serves its serial. */
export async function setSslCert(socket: string, e: CertEntry): Promise<void> {
  const set = await sendCommand(socket, `set ssl cert ${e.copy}`, 5000, e.info.pem);
  if (!/Transaction (created|updated)/.test(set)) throw refused(`set ssl cert ${e.copy}`, set);
  const commit = await sendCommand(socket, `commit ssl cert ${e.copy}`);
  if (!/Success!/.test(commit)) {
    await sendCommand(socket, `abort ssl cert ${e.copy}`).catch(() => '');
    throw refused(`commit ssl cert ${e.copy}`, commit);
  }
  const shown = await sendCommand(socket, `show ssl cert ${e.copy}`);
  const serial = /^Serial: ([0-9A-F]+)$/m.exec(shown)?.[1];
  if (serial !== e.info.serial) throw new UserError(`HAProxy serves serial ${serial ?? '?'} for ${e.copy} after the commit, want ${e.info.serial}`, 'the certificate is applied by a reload instead', ExitCode.refused);
}
