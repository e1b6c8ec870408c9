import { isIP } from 'node:net';
import { isPort } from '../model/validate.js';
import { runTool, type ToolEnv } from './exec.js';
import { canonicalAddress, type NftFamily, type Protocol } from './model.js';

/** conntrack lists and deletes IPv4 entries unless told `-f ipv6`. */
const familyArgs = (family: NftFamily) => (family === 'ip6' ? ['-f', 'ipv6'] : []);

/**
 * Conntrack entries of a mapping: connections that came in on the mapped port and were DNATed
 * (the reply tuple's source is the backend). Removing a backend from the rules only affects new
 * connections; these entries are what still flows to it.
 */
export interface Flow {
  readonly address: string;
  readonly targetPort: number;
  readonly state: string;
}

/** Every DNATed flow of one mapped port and family (one `conntrack -L`, whatever the number of backends). */
export async function listFlows(protocol: Protocol, port: number, opts: ToolEnv = {}, family: NftFamily = 'ip'): Promise<Flow[]> {
  if (!isPort(port)) throw new Error('invalid port');
  const r = await runTool('conntrack', ['-L', ...familyArgs(family), '-p', protocol, '--orig-port-dst', String(port), '--dst-nat'], opts);
  const flows: Flow[] = [];
  for (const line of r.stdout.split('\n')) {
    const srcs = [...line.matchAll(/\bsrc=(\S+)/g)];
    const sports = [...line.matchAll(/\bsport=(\d+)/g)];
    if (srcs.length < 2 || sports.length < 2) continue;
    const state = /\b(ESTABLISHED|SYN_SENT|SYN_RECV|FIN_WAIT|CLOSE_WAIT|LAST_ACK|TIME_WAIT|CLOSE)\b/.exec(line)?.[1] ?? (protocol === 'udp' ? 'UDP' : '?');
    flows.push({ address: canonicalAddress(srcs[1]![1]!), targetPort: Number(sports[1]![1]), state });
  }
  return flows;
}

/** Live flows (TIME_WAIT and CLOSE do not count: nothing more will be sent). */
export function liveFlows(flows: readonly Flow[], address: string, targetPort: number): number {
  return flows.filter((f) => f.address === address && f.targetPort === targetPort && f.state !== 'TIME_WAIT' && f.state !== 'CLOSE').length;
}

/** Delete the flows of a backend that is gone: otherwise UDP keeps going to a dead address until timeout. */
export async function deleteFlows(protocol: Protocol, port: number, address: string, targetPort: number, opts: ToolEnv = {}): Promise<void> {
  const v = isIP(address);
  if (v === 0 || !isPort(port) || !isPort(targetPort)) throw new Error('invalid flow selector');
  // exit 1 means "none matched": fine
  await runTool('conntrack', ['-D', ...familyArgs(v === 6 ? 'ip6' : 'ip'), '-p', protocol, '--orig-port-dst', String(port), '--reply-src', address, '--reply-port-src', String(targetPort)], opts);
}

/** Delete every DNATed flow of a mapped port and family (the mapping is gone). */
export async function deleteMappingFlows(protocol: Protocol, port: number, opts: ToolEnv = {}, family: NftFamily = 'ip'): Promise<void> {
  if (!isPort(port)) throw new Error('invalid port');
  await runTool('conntrack', ['-D', ...familyArgs(family), '-p', protocol, '--orig-port-dst', String(port), '--dst-nat'], opts);
}
