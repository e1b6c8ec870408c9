import { constants } from 'node:os';

/**
 * "This container is going away": Docker's `kill` event carrying the container's stop signal
 * (what `docker stop` sends first, SIGTERM unless the image says otherwise) or SIGKILL. It
 * comes up to the stop timeout (10 s by default) before `die`, while an app that ignores the
 * signal still accepts connections: new ones must stop going to it from that moment. Any other
 * signal (`docker kill -s HUP` to reload) is not a stop.
 */
export interface DockerEvent {
  readonly Type?: string;
  readonly Action?: string;
  readonly status?: string;
  readonly id?: string;
  readonly Actor?: { readonly ID?: string; readonly Attributes?: Readonly<Record<string, string>> };
}

/** `SIGTERM`, `TERM`, `15` -> 15; undefined for anything else. */
export function signalNumber(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const s = value.trim().toUpperCase();
  if (/^\d{1,2}$/.test(s)) return Number(s) > 0 && Number(s) < 65 ? Number(s) : undefined;
  const name = (s.startsWith('SIG') ? s : `SIG${s}`) as keyof typeof constants.signals;
  return constants.signals[name];
}

export function eventAction(ev: DockerEvent): string {
  return String(ev.Action ?? ev.status ?? 'event').split(':')[0]!;
}

export function eventContainerId(ev: DockerEvent): string | undefined {
  if (ev.Type !== undefined && ev.Type !== 'container') return undefined;
  const id = ev.Actor?.ID ?? ev.id;
  return typeof id === 'string' && /^[0-9a-f]{12,64}$/.test(id) ? id : undefined;
}

/** A `kill` event that starts a stop: the container's stop signal (default SIGTERM) or SIGKILL. */
export function isStopKill(ev: DockerEvent, stopSignal: string | undefined): boolean {
  if (eventAction(ev) !== 'kill') return false;
  const sent = signalNumber(ev.Actor?.Attributes?.signal);
  if (sent === undefined) return false;
  return sent === constants.signals.SIGKILL || sent === (signalNumber(stopSignal || 'SIGTERM') ?? constants.signals.SIGTERM);
}
