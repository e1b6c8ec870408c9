import { isIdent } from '../model/validate.js';
import type { NodeMeta } from './protocol.js';

export const MAX_CONCURRENCY = 4096;

/** Check what a node says about itself (after its MAC was verified). A string says what is wrong. */
export function validateMeta(raw: unknown): NodeMeta | string {
  if (typeof raw !== 'object' || raw === null) return 'meta is not an object';
  const m = raw as Record<string, unknown>;
  if (typeof m.node !== 'string' || !isIdent(m.node)) return 'invalid node id';
  if (typeof m.route !== 'string' || !isIdent(m.route)) return 'invalid route';
  if (typeof m.concurrency !== 'number' || !Number.isInteger(m.concurrency) || m.concurrency < 1 || m.concurrency > MAX_CONCURRENCY) return 'invalid concurrency';
  if (typeof m.pid !== 'number' || !Number.isInteger(m.pid) || m.pid < 0) return 'invalid pid';
  if (m.instance !== undefined && (typeof m.instance !== 'string' || !isIdent(m.instance))) return 'invalid instance';
  if (m.app !== undefined && (typeof m.app !== 'string' || !/^[0-9A-Za-z.:[\]-]{1,80}$/.test(m.app))) return 'invalid app address';
  if (m.selfIdle !== undefined && typeof m.selfIdle !== 'boolean') return 'invalid selfIdle';
  return { selfIdle: m.selfIdle === true || undefined, node: m.node, route: m.route, concurrency: m.concurrency, pid: m.pid, instance: m.instance as string | undefined, app: m.app as string | undefined };
}
