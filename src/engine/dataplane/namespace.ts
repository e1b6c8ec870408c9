import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { stateDir } from '../runtime/paths.js';

/**
 * Kernel objects are one set per host, state directories are not: each state directory owns its
 * own namespace of kernel objects, so two instances (or two test runs) with different
 * ELASTIC_STATE_DIRs never see each other's rules as leftovers. The default state directory keeps
 * the documented names (table `ip elastic`, chains `ELASTIC-*`); any other one gets
 * `ip elastic_<h>` and `ELASTIC-<h>-*`, h = 6 hex of sha256(absolute path). Six, not more:
 * `ELASTIC-<h>-SVC-TCP-65535` must fit iptables' 28-character chain names.
 */
export interface Namespace {
  /** '' for the default state directory, else 6 lowercase hex. */
  readonly id: string;
  readonly nftTable: string;
  readonly chainPrefix: string;
}

export const DEFAULT_NAMESPACE: Namespace = { id: '', nftTable: 'elastic', chainPrefix: 'ELASTIC-' };

const OTHER = /^[0-9a-f]{6}-/;

export function namespaceFor(location: string, env: NodeJS.ProcessEnv = process.env): Namespace {
  const { ELASTIC_STATE_DIR: _ignored, ...rest } = env;
  if (resolve(location) === resolve(stateDir(rest))) return DEFAULT_NAMESPACE;
  const id = createHash('sha256').update(resolve(location)).digest('hex').slice(0, 6);
  return { id, nftTable: `elastic_${id}`, chainPrefix: `ELASTIC-${id}-` };
}

/** The namespace of the state directory this environment uses (ELASTIC_STATE_DIR or the default). */
export function namespaceOfEnv(env: NodeJS.ProcessEnv = process.env): Namespace {
  return namespaceFor(stateDir(env), env);
}

/**
 * Is this iptables chain ours? `ELASTIC-` is a prefix of every namespace's chains: the default
 * namespace owns the ones whose next part is not another namespace's `<6 hex>-` (its own names
 * go on with an upper-case word: BE-, SVC-, HP-, PREROUTING...).
 */
export function ownsChain(ns: Namespace, chain: string): boolean {
  if (!chain.startsWith(ns.chainPrefix)) return false;
  return ns.id !== '' || !OTHER.test(chain.slice(ns.chainPrefix.length));
}
