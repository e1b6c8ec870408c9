import type Docker from 'dockerode';
import { waitFor } from './docker.js';
import { getWithHost } from './route-backends.js';

/** Wait until host+path on 127.0.0.1:port answers `want` (a body, or a status such as the 404 page). */
export const serves = (port: number, host: string, path: string, want: string | number, what: string) =>
  waitFor(async () => {
    const a = await getWithHost(port, host, path);
    return typeof want === 'number' ? a.status === want : a.status === 200 && a.body === want;
  }, what, 30_000, 100);

/**
 * Remove a test network. A container Docker is still tearing down keeps its endpoint a moment
 * (seen after a failed run: the network outlived the test and the next run could not create its
 * subnet), so this retries for a while.
 */
export const removeNetwork = (network: Docker.Network) =>
  waitFor(async () => network.remove().then(() => true, (e: { statusCode?: number }) => e.statusCode === 404), 'the test network removed', 15_000, 250).catch(() => {});
