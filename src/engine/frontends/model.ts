import { backendWeight, type Backend, type BackendSet } from '../model/backend.js';
import { isAddress, isPort, printable, toIdent } from '../model/validate.js';
import { routedRules, type RoutedRules } from './backend-rules.js';
import { isRouted, routedBinds, type RoutedBind, type ServiceRoutes } from './routing.js';
import type { CertSet } from './tls/certs.js';
import { attachTls, type ServiceTls, type TlsOptions } from './tls/tls-data.js';

/**
 * What `render` renders: plain data built from the operator's service specs and the discovered
 * backends. The template data model (`TemplateData`) is documented in docs/render.md; every
 * string in it is either a safe token (identifier, address, number) or has been made printable
 * (no control characters), and free text must still go through the `quote`/`comment` helpers.
 */
export type ProxyKind = 'haproxy' | 'nginx' | 'varnish';
export type Mode = 'http' | 'tcp';
export type Balance = 'roundrobin' | 'leastconn' | 'source';

/** The proxy's own health check of servers (not elastic's discovery check). */
export interface LbCheck {
  readonly kind: 'none' | 'tcp' | 'http';
  readonly path: string;
  readonly intervalMs: number;
}

export interface ServiceSpec {
  readonly name: string; // identifier
  readonly bind: { readonly address: string; readonly port: number };
  readonly mode: Mode;
  readonly balance: Balance;
  readonly check: LbCheck;
  /** Minimum number of pre-allocated HAProxy server slots. */
  readonly minSlots: number;
  /** Hosts and paths on a shared bind (routing.ts); absent: every request on its bind. */
  readonly routes?: ServiceRoutes;
  /** The default_service of its bind: requests no route matches. */
  readonly isDefaultService?: boolean;
  /** Served over https too (tls/tls-data.ts), with redirect / HSTS. */
  readonly tls?: ServiceTls;
  /** The body of its 503 page, from an operator's file (error-page.ts); absent: the built-in page. */
  readonly page503?: string;
}

export interface TemplateBackend {
  readonly id: string; // printable
  readonly name: string; // identifier made from the backend's name (safe token)
  readonly displayName: string; // printable, may contain quotes/spaces: use quote/comment
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>; // printable values: use quote/comment
}

/** One pre-allocated HAProxy server line: filled (a backend) or empty (disabled placeholder). */
export interface Slot {
  readonly name: string; // s1, s2, ...
  readonly backend: TemplateBackend | null;
}

export interface TemplateService {
  readonly name: string;
  readonly bind: { readonly address: string; readonly port: number };
  readonly mode: Mode;
  readonly balance: Balance;
  readonly check: LbCheck;
  readonly backends: readonly TemplateBackend[];
  readonly slots: readonly Slot[];
  /** Served through a routed bind (`routedBinds`), not a frontend/server of its own. */
  readonly routed: boolean;
}

export interface TemplateData {
  readonly instance: string;
  readonly proxy: ProxyKind;
  readonly services: readonly TemplateService[];
  /** Binds shared by services routed by Host and path (one HAProxy frontend / nginx servers each). */
  readonly routedBinds: readonly RoutedBind[];
  /** Whether any service is in this mode (nginx needs an http {} and/or a stream {} block). */
  readonly hasHttp: boolean;
  readonly hasTcp: boolean;
  /** Custom 503 page bodies by service name (only services that have one): print with `{{page x}}`. */
  readonly pages503: Readonly<Record<string, string>>;
  /** HAProxy: a routed service's own backend rules (redirect, HSTS, prefix strip) by service name. */
  readonly routedRules?: Readonly<Record<string, RoutedRules>>;
  /** Proxy-specific paths the applier relies on (stats socket, pid file...). */
  readonly paths: Readonly<Record<string, string>>;
}

/** Slot assignment per service: index i holds the backend id in slot s(i+1), or null. */
export type SlotMap = Readonly<Record<string, ReadonlyArray<string | null>>>;

export { WEIGHT_LABEL, backendWeight } from '../model/backend.js';

export function toTemplateBackend(b: Backend): TemplateBackend {
  if (!isAddress(b.address) || !isPort(b.port)) throw new Error(`backend ${printable(b.id)} has an invalid address`);
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(b.labels)) labels[printable(k, 128)] = printable(v, 256);
  return {
    id: printable(b.id, 128),
    name: toIdent(b.name),
    displayName: printable(b.name, 128),
    address: b.address,
    port: b.port,
    weight: backendWeight(b),
    labels,
  };
}

/** Next power of two >= n, at least `min`. */
export function slotCount(n: number, min: number): number {
  let size = Math.max(1, min);
  while (size < n) size *= 2;
  return size;
}

/**
 * Stable slot assignment (pure): backends keep their slot; removed ones free theirs; new ones take
 * the lowest slot that was already free before this pass, and a slot freed in this pass only when
 * there is no other. A just-freed slot may still carry the old backend's sessions and pooled idle
 * connections (HAProxy keeps reusing those after `set server addr`), and a backend being drained
 * (`reserved`: still listed, taken out by a drain) keeps its slot empty until it is gone, so a
 * drain in progress never watches, or ends with `maint` on, a slot that now holds someone else.
 * When they do not fit, the table grows (a structural change).
 */
export function assignSlots(previous: ReadonlyArray<string | null> | undefined, ids: readonly string[], minSlots: number, reserved: ReadonlySet<string> = new Set()): Array<string | null> {
  const want = new Set(ids);
  const held = (previous ?? []).filter((id): id is string => id !== null && !want.has(id) && reserved.has(id)).length;
  const size = Math.max(previous?.length ?? 0, slotCount(ids.length + held, minSlots));
  const slots: Array<string | null> = Array.from({ length: size }, (_, i) => {
    const id = previous?.[i] ?? null;
    return id !== null && want.has(id) ? id : null;
  });
  const placed = new Set(slots.filter((s): s is string => s !== null));
  const wasFree = (i: number) => (previous?.[i] ?? null) === null;
  const isReserved = (i: number) => reserved.has(previous?.[i] ?? '');
  const order = [...slots.keys()].filter((i) => slots[i] === null && !isReserved(i)).sort((a, b) => Number(wasFree(b)) - Number(wasFree(a)) || a - b);
  let next = 0;
  for (const id of ids) {
    if (placed.has(id)) continue;
    slots[order[next++]!] = id;
  }
  return slots;
}

export interface BuildInput {
  readonly instance: string;
  readonly proxy: ProxyKind;
  readonly specs: readonly ServiceSpec[];
  readonly backends: Readonly<Record<string, BackendSet>>;
  readonly previousSlots?: SlotMap;
  /** Backends being drained: their slots are not given to another backend (assignSlots). */
  readonly reserved?: ReadonlySet<string>;
  /**
   * Backends draining in place (HAProxy): rendered with weight 0, so the drain is desired state and
   * a reload in the middle of it keeps it (frontends/drain.ts).
   */
  readonly draining?: ReadonlySet<string>;
  readonly paths?: Readonly<Record<string, string>>;
  /** A bind routed even with no service on it (render --routes-from-labels). */
  readonly frontDoor?: { readonly address: string; readonly port: number };
  /** The TLS bind and the certificates it serves (render --tls-bind). */
  readonly tls?: { readonly options: TlsOptions; readonly certs: CertSet };
}

/** Desired state (pure): the data a template renders, plus the slot map it implies. */
export function buildTemplateData(input: BuildInput): { data: TemplateData; slots: SlotMap } {
  const slotMap: Record<string, Array<string | null>> = {};
  const services = input.specs.map((spec): TemplateService => {
    const set = input.backends[spec.name] ?? [];
    const byId = new Map(set.map((b) => [b.id, input.draining?.has(b.id) ? { ...toTemplateBackend(b), weight: 0 } : toTemplateBackend(b)]));
    const assigned = assignSlots(input.previousSlots?.[spec.name], set.map((b) => b.id), spec.minSlots, input.reserved);
    slotMap[spec.name] = assigned;
    return {
      name: spec.name,
      bind: spec.bind,
      mode: spec.mode,
      balance: spec.balance,
      check: spec.check,
      backends: [...byId.values()],
      slots: assigned.map((id, i) => ({ name: `s${i + 1}`, backend: id === null ? null : byId.get(id)! })),
      routed: isRouted(spec, input.specs, input.frontDoor),
    };
  });
  const hasMode = (m: Mode) => services.some((s) => s.mode === m);
  const empty = new Set(services.filter((s) => s.backends.length === 0).map((s) => s.name));
  const pages503 = Object.fromEntries(input.specs.flatMap((s) => (s.page503 === undefined ? [] : [[s.name, s.page503]])));
  const binds = attachTls(routedBinds(input.specs, empty, input.frontDoor), input.specs, input.tls?.certs, input.tls?.options, input.proxy === 'nginx');
  return { data: { instance: input.instance, proxy: input.proxy, services, routedBinds: binds, routedRules: routedRules(binds), hasHttp: hasMode('http') || input.frontDoor !== undefined, hasTcp: hasMode('tcp'), pages503, paths: input.paths ?? {} }, slots: slotMap };
}

/** The same data with every slot empty: rendering it gives the config's structure only. */
export function skeletonOf(data: TemplateData): TemplateData {
  return {
    ...data,
    services: data.services.map((s) => ({ ...s, backends: [], slots: s.slots.map((slot) => ({ name: slot.name, backend: null })) })),
  };
}
