import { isIP } from 'node:net';
import type Docker from 'dockerode';
import type { Backend, Health } from '../../model/backend.js';
import { isAddress, isIdent, isPort, isSafeText, printable } from '../../model/validate.js';
import { bareId, globToRegExp, isImageId, normalizeImageRef, type DockerSelector } from '../selector.js';

/**
 * dockerode's ContainerInfo -> our Backend, or a reason to skip. Pure: the table tests in
 * test/unit/docker-parse.test.ts drive it with fixtures. Nothing of the SDK type leaves here.
 */
export type ParseResult = { ok: true; backend: Backend } | { ok: false; id: string; reason: string; ambiguous?: boolean };

/**
 * How containers are matched to `--image`, the way they reference their image: a `repo:tag`
 * matches containers created from that reference (`docker ps` IMAGE column, normalized: `web` is
 * `docker.io/library/web:latest`); an image ID (or unique prefix, `sha256:` optional) matches
 * containers running exactly that image. A container whose tag has since moved to another image
 * shows an ID in Docker and is matched only by ID: selecting by tag means "the current image".
 */
export type ImageMatch = { readonly ref: string } | { readonly id: string };

export function imageMatcher(selector: DockerSelector): ImageMatch | null {
  if (!selector.image) return null;
  if (isImageId(selector.image)) return { id: bareId(selector.image) };
  return { ref: normalizeImageRef(selector.image) };
}

export function matchesImage(info: Pick<Docker.ContainerInfo, 'Image' | 'ImageID'>, m: ImageMatch | null): boolean {
  if (!m) return true;
  if ('id' in m) return bareId(info.ImageID ?? '').startsWith(m.id);
  return Boolean(info.Image) && !isImageId(info.Image) && normalizeImageRef(info.Image) === m.ref;
}

export function healthOf(status: string | undefined): Health {
  if (!status) return 'none';
  if (status.includes('(healthy)')) return 'healthy';
  if (status.includes('(unhealthy)')) return 'unhealthy';
  if (status.includes('(health: starting)')) return 'starting';
  return 'none';
}

function labelsOf(raw: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw ?? {})) {
    // Labels are untrusted data: keep only printable ones, bounded.
    if (isSafeText(k, 128) && isSafeText(String(v), 1024)) out[k] = String(v);
  }
  return out;
}

export function parseContainer(
  info: Docker.ContainerInfo,
  selector: DockerSelector,
  image: ImageMatch | null,
  startedAt?: string,
): ParseResult | null {
  const shortId = info.Id.slice(0, 12);
  if (info.State !== 'running') return null;
  if (!matchesImage(info, image)) return null;
  const labels = labelsOf(info.Labels);
  for (const { key, value } of selector.labels) if (labels[key] !== value) return null;
  for (const key of selector.labelKeys ?? []) {
    if (info.Labels?.[key] === undefined) return null;
    // Present but dropped by labelsOf (control characters, too long): say so, never render it.
    if (labels[key] === undefined) return { ok: false, id: shortId, reason: `label ${key} is not printable text of at most 1024 characters` };
  }
  const rawName = (info.Names?.[0] ?? shortId).replace(/^\//, '');
  if (selector.name && !globToRegExp(selector.name).test(rawName)) return null;
  const name = printable(rawName, 128);

  const health = healthOf(info.Status);
  if (!selector.includeUnhealthy && (health === 'unhealthy' || health === 'starting')) {
    return { ok: false, id: shortId, reason: `health is ${health}` };
  }

  const networks = info.NetworkSettings?.Networks ?? {};
  const netNames = Object.keys(networks).filter((n) => networks[n]?.IPAddress);
  let netName: string | undefined;
  if (selector.network) {
    if (!networks[selector.network]?.IPAddress) {
      return { ok: false, id: shortId, reason: `not on network ${printable(selector.network, 64)}` };
    }
    netName = selector.network;
  } else if (netNames.length === 1) {
    netName = netNames[0];
  } else if (netNames.length === 0) {
    return { ok: false, id: shortId, reason: 'no IP address (host network or none)' };
  } else {
    return {
      ok: false,
      id: shortId,
      ambiguous: true,
      reason: `on several networks (${netNames.map((n) => printable(n, 40)).join(', ')}); pass --network`,
    };
  }
  const address = networks[netName!]!.IPAddress;
  if (!isAddress(address)) return { ok: false, id: shortId, reason: 'invalid IP address' };
  // An IPv6-enabled network gives the container a global IPv6 address too (not a reason to skip when odd: IPv4 still serves).
  const v6 = networks[netName!]!.GlobalIPv6Address;
  const address6 = v6 && isIP(v6) === 6 ? v6 : undefined;

  let port = selector.port;
  const portText = selector.portLabel ? labels[selector.portLabel] : undefined;
  if (portText !== undefined) {
    // A label is untrusted text: a port number or the container is skipped (never guessed).
    if (!/^\d{1,5}$/.test(portText) || !isPort(Number(portText))) return { ok: false, id: shortId, reason: `label ${selector.portLabel}="${printable(portText, 40)}" is not a port (1-65535)` };
    port = Number(portText);
  }
  if (port === undefined) {
    const privatePorts = [...new Set((info.Ports ?? []).filter((p) => p.Type === 'tcp').map((p) => p.PrivatePort))];
    if (privatePorts.length !== 1) {
      return {
        ok: false,
        id: shortId,
        ambiguous: true,
        reason: privatePorts.length === 0 ? 'exposes no port; pass --port' : `exposes several ports (${privatePorts.join(', ')}); pass --port`,
      };
    }
    port = privatePorts[0]!;
  }

  const svcLabel = labels['elastic.service'];
  const service = svcLabel && isIdent(svcLabel) ? svcLabel : selector.service;
  return {
    ok: true,
    backend: {
      id: `docker:${shortId}`,
      name,
      service,
      source: 'docker',
      address,
      ...(address6 ? { address6 } : {}),
      port,
      state: 'running',
      health,
      labels,
      image: printable(info.Image ?? '', 200),
      since: startedAt ?? new Date(info.Created * 1000).toISOString(),
    },
  };
}
