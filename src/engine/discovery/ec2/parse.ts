import type { Instance } from '@aws-sdk/client-ec2';
import type { Backend } from '../../model/backend.js';
import { isAddress, isIdent, isSafeText, printable } from '../../model/validate.js';

/**
 * The SDK's EC2 `Instance` -> our Backend, or a reason to skip it. Pure: the table tests in
 * test/unit/ec2-parse.test.ts drive it with fixtures. Nothing of the SDK type leaves here, and
 * every string that came from EC2 (tags above all) is treated as untrusted.
 */
export interface Ec2Selector {
  /** `--tag KEY=VALUE`: sent as `tag:KEY` filters (same key twice = either value). */
  readonly tags: readonly { key: string; value: string }[];
  readonly port: number;
  /** Which address to balance to: the private IP (default) or the public one (`--public`). */
  readonly addressType: 'private' | 'public';
  /** Service name for the selected backends (overridden per instance by the `elastic.service` tag). */
  readonly service: string;
}

export type Ec2ParseResult = { ok: true; backend: Backend } | { ok: false; id: string; reason: string };

/** AWS limits tag keys to 128 and values to 256 characters; anything longer is not EC2's. */
function labelsOf(tags: Instance['Tags']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) {
    const key = t.Key;
    const value = t.Value ?? '';
    if (key && isSafeText(key, 128) && isSafeText(value, 256)) out[key] = value;
  }
  return out;
}

/** null: not a candidate at all (not running). A running instance we cannot use gets a reason. */
export function parseInstance(inst: Instance, selector: Ec2Selector): Ec2ParseResult | null {
  // Excluded here too, not only by the server-side filter: a pending or stopping instance
  // must never receive traffic, whatever the endpoint returned.
  if (inst.State?.Name !== 'running') return null;
  const rawId = inst.InstanceId ?? '';
  if (!isIdent(rawId)) return { ok: false, id: printable(rawId || '(none)', 40), reason: 'invalid instance id' };

  const kind = selector.addressType;
  const address = kind === 'public' ? inst.PublicIpAddress : inst.PrivateIpAddress;
  if (!address) {
    return { ok: false, id: rawId, reason: kind === 'public' ? 'no public IP address' : 'no private IP address' };
  }
  if (!isAddress(address)) return { ok: false, id: rawId, reason: `invalid ${kind} IP address "${printable(address, 45)}"` };

  const labels = labelsOf(inst.Tags);
  const nameTag = inst.Tags?.find((t) => t.Key === 'Name')?.Value;
  const svcTag = labels['elastic.service'];
  const launched = inst.LaunchTime instanceof Date && !Number.isNaN(inst.LaunchTime.getTime()) ? inst.LaunchTime : undefined;
  return {
    ok: true,
    backend: {
      id: `ec2:${rawId}`,
      name: nameTag ? printable(nameTag, 128) : rawId,
      service: svcTag && isIdent(svcTag) ? svcTag : selector.service,
      source: 'ec2',
      address,
      port: selector.port,
      state: 'running',
      health: 'none',
      labels,
      image: inst.ImageId ? printable(inst.ImageId, 128) : undefined,
      // EC2 always sends launchTime; the epoch only stands in for a broken answer.
      since: (launched ?? new Date(0)).toISOString(),
    },
  };
}
