import { createHash } from 'node:crypto';
import type { TemplateData } from '../model.js';

/**
 * The HAProxy plan (pure): from the last applied state and the desired render, either nothing,
 * a list of runtime API operations (membership only: fill/empty/re-weight pre-allocated slots),
 * or a reload (anything structural: a service, bind, option or slot count changed; no applied
 * state known). Structure is compared by rendering the template with every slot empty (the
 * "skeleton"): if a custom template prints anything else that depends on the backends, every
 * change is structural — slower, but never wrong.
 */
export interface SlotContent {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
}

export interface HaproxyApplied {
  readonly skeletonHash: string;
  readonly configHash: string;
  /** Per service: slot index -> content (null: empty). */
  readonly slots: Readonly<Record<string, ReadonlyArray<SlotContent | null>>>;
}

export type RuntimeOp =
  | { readonly op: 'fill'; readonly backend: string; readonly server: string; readonly address: string; readonly port: number; readonly weight: number; readonly id: string }
  | { readonly op: 'empty'; readonly backend: string; readonly server: string; readonly id: string }
  | { readonly op: 'weight'; readonly backend: string; readonly server: string; readonly weight: number; readonly id: string };

export interface HaproxyPlan {
  readonly action: 'none' | 'runtime' | 'reload';
  readonly ops: readonly RuntimeOp[];
  readonly reason: string;
}

export const hashText = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);
export const backendName = (service: string) => `be_${service}`;

export function appliedSlots(data: TemplateData): Record<string, Array<SlotContent | null>> {
  return Object.fromEntries(
    data.services.map((s) => [s.name, s.slots.map((slot) => (slot.backend ? { id: slot.backend.id, address: slot.backend.address, port: slot.backend.port, weight: slot.backend.weight } : null))]),
  );
}

export function planHaproxy(last: HaproxyApplied | undefined, desired: HaproxyApplied): HaproxyPlan {
  if (!last) return { action: 'reload', ops: [], reason: 'no applied state (first apply)' };
  if (last.skeletonHash !== desired.skeletonHash) return { action: 'reload', ops: [], reason: structuralReason(last, desired) };
  // Same text is not enough: a custom template may not print a weight (a drain is weight 0).
  const fills: RuntimeOp[] = [];
  const empties: RuntimeOp[] = [];
  const weights: RuntimeOp[] = [];
  for (const [service, want] of Object.entries(desired.slots)) {
    const had = last.slots[service] ?? [];
    const backend = backendName(service);
    want.forEach((slot, i) => {
      const prev = had[i] ?? null;
      const server = `s${i + 1}`;
      if (slot && (!prev || prev.id !== slot.id || prev.address !== slot.address || prev.port !== slot.port)) {
        fills.push({ op: 'fill', backend, server, address: slot.address, port: slot.port, weight: slot.weight, id: slot.id });
      } else if (slot && prev && prev.weight !== slot.weight) {
        weights.push({ op: 'weight', backend, server, weight: slot.weight, id: slot.id });
      } else if (!slot && prev) {
        empties.push({ op: 'empty', backend, server, id: prev.id });
      }
    });
  }
  const ops = [...fills, ...weights, ...empties]; // add capacity before taking any away
  if (ops.length === 0) return { action: 'none', ops: [], reason: 'unchanged' };
  return { action: 'runtime', ops, reason: `${fills.length} filled, ${empties.length} emptied, ${weights.length} re-weighted` };
}

function structuralReason(last: HaproxyApplied, desired: HaproxyApplied): string {
  const a = Object.keys(last.slots).sort();
  const b = Object.keys(desired.slots).sort();
  if (a.join() !== b.join()) return `services changed (${a.join(',') || '-'} -> ${b.join(',') || '-'})`;
  for (const s of b) {
    const had = last.slots[s]?.length ?? 0;
    const want = desired.slots[s]?.length ?? 0;
    if (had !== want) return `${s}: server slots ${had} -> ${want}`;
  }
  return 'structure changed (frontend, bind, options or template)';
}

/** The runtime API commands for one op. Names and values are identifiers/addresses/numbers. */
export function opCommands(op: RuntimeOp): string[] {
  const target = `${op.backend}/${op.server}`;
  switch (op.op) {
    case 'fill':
      return [`set server ${target} addr ${op.address} port ${op.port}`, `set server ${target} weight ${op.weight}`, `set server ${target} state ready`];
    case 'weight':
      return [`set server ${target} weight ${op.weight}`];
    case 'empty':
      return [`set server ${target} state maint`];
  }
}
