import { ExitCode, UserError } from './errors.js';
import { printable } from './model/validate.js';
import { DEFAULT_SEED } from './dataplane/maglev.js';
import { AFFINITY_TIMEOUT_S, MAX_SEED, type DataplaneKind, type MappingSpec, type Spread } from './dataplane/model.js';

/**
 * The spread of a new nft mapping when --spread is not given (see docs/map-image.md, "Spread"):
 * hash since its benchmark (one change < 20 ms at 1,000 backends) was met. A state entry without
 * a spread (made before) stays random: only a declaration picks the default.
 */
export const DEFAULT_SPREAD: Spread = 'hash';

export interface SpreadOptions {
  /** Absent: DEFAULT_SPREAD on nft, random on iptables (which cannot hash a flow into a table). */
  spread?: Spread;
  /** The hash seed; absent: DEFAULT_SEED (two hosts agree with no configuration). */
  seed?: number;
  /** `--affinity client-ip`. */
  affinity?: 'client-ip' | 'none';
  /** Seconds; only with affinity (default 3 h). */
  affinityTimeoutS?: number;
}

const usage = (message: string, hint: string) => new UserError(message, hint, ExitCode.usage);

/** The spec fields of `--spread`, `--seed` and `--affinity` on this data plane, or a one-line refusal. */
export function resolveSpread(dataplane: DataplaneKind, o: SpreadOptions): Pick<MappingSpec, 'spread' | 'seed' | 'affinityS'> {
  if (dataplane === 'iptables' && o.spread === 'hash') throw usage('--spread hash needs the nft data plane (iptables cannot pick a backend from a table by a hash of the flow)', 'use --dataplane nft, or --spread random');
  if (dataplane === 'iptables' && o.affinity === 'client-ip') throw usage('--affinity needs the nft data plane (elastic does not express it with iptables)', 'use --dataplane nft, or drop --affinity');
  if (o.seed !== undefined && !(Number.isInteger(o.seed) && o.seed >= 0 && o.seed <= MAX_SEED)) throw usage(`invalid seed ${printable(String(o.seed), 20)}`, `give a whole number 0-${MAX_SEED}`);
  const spread = o.spread ?? (dataplane === 'nft' ? DEFAULT_SPREAD : 'random');
  if (o.seed !== undefined && spread !== 'hash') throw usage('--seed only applies to --spread hash', 'drop --seed, or add --spread hash');
  const t = o.affinityTimeoutS;
  if (t !== undefined && o.affinity !== 'client-ip') throw usage('--affinity-timeout only applies to --affinity client-ip', 'add --affinity client-ip, or drop --affinity-timeout');
  if (t !== undefined && !(Number.isInteger(t) && t >= AFFINITY_TIMEOUT_S.min && t <= AFFINITY_TIMEOUT_S.max)) throw usage(`--affinity-timeout ${printable(String(t), 20)} s is out of range`, 'give 1s to 24h, e.g. 3h');
  return {
    spread,
    ...(spread === 'hash' && o.seed !== undefined && o.seed !== DEFAULT_SEED ? { seed: o.seed } : {}),
    ...(o.affinity === 'client-ip' ? { affinityS: t ?? AFFINITY_TIMEOUT_S.default } : {}),
  };
}

/** `--affinity-timeout`: `90`, `90s`, `30m`, `3h` (1 s - 24 h). */
export function parseAffinityTimeout(text: string): number {
  const m = /^(\d{1,6})(s|m|h)?$/.exec(text.trim());
  const s = m ? Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1) : Number.NaN;
  if (!(s >= AFFINITY_TIMEOUT_S.min && s <= AFFINITY_TIMEOUT_S.max)) throw usage(`invalid --affinity-timeout "${printable(text, 20)}"`, 'give a duration from 1s to 24h, e.g. 30s, 10m or 3h');
  return s;
}

/** `--seed`: decimal or 0x hex, 0-4294967295. */
export function parseSeed(text: string): number {
  const n = /^\d{1,10}$/.test(text) ? Number(text) : /^0x[0-9a-f]{1,8}$/i.test(text) ? Number.parseInt(text.slice(2), 16) : Number.NaN;
  if (!(n >= 0 && n <= MAX_SEED)) throw usage(`invalid --seed "${printable(text, 20)}"`, `give a whole number 0-${MAX_SEED} (or 0x hex), the same on every LB host`);
  return n;
}
