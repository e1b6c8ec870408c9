import { ExitCode, UserError } from '../errors.js';
import { parseKeyValue } from '../model/validate.js';

/** What to select from Docker. Built from flags or a config file; plain data. */
export interface DockerSelector {
  readonly image?: string;
  readonly labels: readonly { key: string; value: string }[];
  /** Glob on the container name: `*` any run, `?` one character. */
  readonly name?: string;
  readonly network?: string;
  readonly port?: number;
  readonly includeUnhealthy: boolean;
  /** Service name for the selected backends (overridden per container by `elastic.service`). */
  readonly service: string;
  /** Containers must carry these label keys, whatever their value (render --routes-from-labels). */
  readonly labelKeys?: readonly string[];
  /** The container port comes from this label when the container has it (elastic.http.port). */
  readonly portLabel?: string;
}

export function parseLabels(values: readonly string[] | undefined, flag = '--label'): { key: string; value: string }[] {
  return (values ?? []).map((v) => parseKeyValue(v, flag));
}

/** Compile a name glob into an anchored regex; every other character is literal. */
export function globToRegExp(glob: string): RegExp {
  if (glob.length > 256) throw new UserError('--name pattern is too long', 'use at most 256 characters', ExitCode.usage);
  const body = [...glob].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`, 's');
}

/** `repo` and `docker.io/library/repo:latest` are the same reference. */
export function normalizeImageRef(ref: string): string {
  let r = ref.trim();
  if (r.startsWith('docker.io/')) r = r.slice('docker.io/'.length);
  if (r.startsWith('library/')) r = r.slice('library/'.length);
  const lastSlash = r.lastIndexOf('/');
  const hasTag = r.indexOf(':', lastSlash + 1) >= 0;
  if (!hasTag && !r.includes('@')) r = `${r}:latest`;
  return r;
}

// Docker's reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest].
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::\\d{1,5})?/)';
const REFERENCE = new RegExp(`^${DOMAIN}?${COMPONENT}(?:/${COMPONENT})*(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`);

/** An image reference (`repo:tag`, `registry:5000/a/b@sha256:...`) or an image ID. */
export function isImageReference(ref: string): boolean {
  return ref.length <= 512 && (isImageId(ref) || REFERENCE.test(ref));
}

export function isImageId(ref: string): boolean {
  return /^(sha256:)?[0-9a-f]{12,64}$/.test(ref);
}

/** Strip `sha256:` so ids and their short prefixes compare. */
export function bareId(id: string): string {
  return id.startsWith('sha256:') ? id.slice(7) : id;
}
