/**
 * `run-<name>.json`: the last accepted backends per service, so guardrails hold across restarts
 * and health checks start from what is serving (`accepted`: ids, kept for older readers).
 */
export interface RunState {
  readonly v: 1;
  readonly accepted: Readonly<Record<string, readonly string[]>>;
  readonly backends?: Readonly<Record<string, ReadonlyArray<{ id: string; address: string; port: number }>>>;
  readonly time: string;
}

const isRecordOf = (v: unknown, item: (x: unknown) => boolean) =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((list) => Array.isArray(list) && list.every(item));

export function isRunState(v: unknown): v is RunState {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  const isEndpoint = (b: unknown) => typeof b === 'object' && b !== null && typeof (b as { id: unknown }).id === 'string' && typeof (b as { address: unknown }).address === 'string' && Number.isInteger((b as { port: unknown }).port);
  return s.v === 1 && isRecordOf(s.accepted, (id) => typeof id === 'string') && (s.backends === undefined || isRecordOf(s.backends, isEndpoint));
}
