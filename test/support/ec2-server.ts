import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP server on 127.0.0.1 that speaks enough of the EC2 Query API for the real
 * @aws-sdk/client-ec2 to talk to it (point the client's endpoint at `server.url`). It records
 * every request, applies filters and pagination to a fixture list, and can be told to fail.
 * Actions live in `server.actions`: add RunInstances/TerminateInstances there the same way.
 */
export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';
const STATE_CODES: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export interface FakeInstance {
  instanceId: string;
  state?: InstanceStateName; // default running
  imageId?: string;
  privateIp?: string;
  publicIp?: string;
  launchTime?: string;
  tags?: Record<string, string>;
  /** Instances sharing one are returned in one reservation item. */
  reservationId?: string;
}

export interface Ec2Request {
  readonly action: string;
  readonly version: string;
  /** The raw form parameters, as sent. */
  readonly params: Readonly<Record<string, string>>;
  /** `Filter.N.Name` / `Filter.N.Value.M`, in N order. */
  readonly filters: ReadonlyArray<{ name: string; values: string[] }>;
  readonly authorization: string;
  /** Echoed in the answer (header and body), as EC2 does. */
  readonly requestId: string;
}

export interface Ec2Fault {
  status: number;
  code: string;
  message: string;
}

/** Thrown by an action handler to answer an EC2 error document. */
export class Ec2FaultError extends Error {
  constructor(readonly fault: Ec2Fault) {
    super(fault.message);
  }
}

/** An action handler returns the full XML body of a successful answer. */
export type ActionHandler = (req: Ec2Request, server: Ec2TestServer) => string;

export interface Ec2ServerOptions {
  instances?: FakeInstance[];
  /** Instances per page (capped by the request's MaxResults). Default: all on one page. */
  pageSize?: number;
}

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export class Ec2TestServer {
  instances: FakeInstance[];
  pageSize: number;
  /** Return instances in any state even when asked for running only (proves client-side exclusion). */
  ignoreStateFilter = false;
  readonly requests: Ec2Request[] = [];
  readonly actions = new Map<string, ActionHandler>([['DescribeInstances', describeInstances]]);
  private readonly faults: Ec2Fault[] = [];
  private server: Server | null = null;
  private seq = 0;
  url = '';

  constructor(opts: Ec2ServerOptions = {}) {
    this.instances = opts.instances ?? [];
    this.pageSize = opts.pageSize ?? Number.POSITIVE_INFINITY;
  }

  /** Answer the next `count` requests with this error (before any action runs). */
  failNext(count: number, fault: Ec2Fault): void {
    for (let i = 0; i < count; i++) this.faults.push(fault);
  }

  /** Faults queued but not yet served (0 when the client made every attempt it should). */
  get pendingFaults(): number {
    return this.faults.length;
  }

  requestsFor(action: string): Ec2Request[] {
    return this.requests.filter((r) => r.action === action);
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    const request: Ec2Request = {
      action: params.Action ?? '',
      version: params.Version ?? '',
      params,
      filters: parseFilters(params),
      authorization: String(req.headers.authorization ?? ''),
      requestId: `00000000-0000-4000-8000-${String(++this.seq).padStart(12, '0')}`,
    };
    this.requests.push(request);
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': request.requestId });
      res.end(body);
    };
    const fault = this.faults.shift();
    if (fault) return send(fault.status, errorXml(fault, request.requestId));
    const handler = this.actions.get(request.action);
    if (req.method !== 'POST' || !handler) {
      return send(400, errorXml({ status: 400, code: 'InvalidAction', message: `The action ${request.action} is not valid for this web service.` }, request.requestId));
    }
    try {
      send(200, handler(request, this));
    } catch (err) {
      if (err instanceof Ec2FaultError) return send(err.fault.status, errorXml(err.fault, request.requestId));
      send(500, errorXml({ status: 500, code: 'InternalError', message: String(err) }, request.requestId));
    }
  }
}

export function errorXml(f: Ec2Fault, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(f.code)}</Code><Message>${esc(f.message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}

export async function startEc2Server(opts: Ec2ServerOptions = {}): Promise<Ec2TestServer> {
  const server = new Ec2TestServer(opts);
  await server.start();
  return server;
}

/** `Filter.2.Value.1=web` -> [{ name, values }] in N order. */
function parseFilters(params: Record<string, string>): Array<{ name: string; values: string[] }> {
  const byN = new Map<number, { name: string; values: Array<[number, string]> }>();
  for (const [k, v] of Object.entries(params)) {
    const m = /^Filter\.(\d+)\.(Name|Value\.(\d+))$/.exec(k);
    if (!m) continue;
    const n = Number(m[1]);
    const f = byN.get(n) ?? { name: '', values: [] };
    byN.set(n, f);
    if (m[2] === 'Name') f.name = v;
    else f.values.push([Number(m[3]), v]);
  }
  return [...byN.entries()]
    .sort(([a], [b]) => a - b)
    .map(([, f]) => ({ name: f.name, values: f.values.sort(([a], [b]) => a - b).map(([, v]) => v) }));
}

/** EC2 filter values allow `*` and `?` wildcards. */
function globMatch(pattern: string, value: string): boolean {
  const re = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&'))).join('');
  return new RegExp(`^${re}$`, 's').test(value);
}

function matches(inst: FakeInstance, filters: Ec2Request['filters'], ignoreState: boolean): boolean {
  return filters.every(({ name, values }) => {
    let actual: string | undefined;
    if (name === 'instance-state-name') {
      if (ignoreState) return true;
      actual = inst.state ?? 'running';
    } else if (name === 'instance-id') actual = inst.instanceId;
    else if (name.startsWith('tag:')) actual = inst.tags?.[name.slice(4)];
    else throw new Ec2FaultError({ status: 400, code: 'InvalidParameterValue', message: `The filter '${name}' is invalid` });
    return actual !== undefined && values.some((p) => globMatch(p, actual!));
  });
}

function describeInstances(req: Ec2Request, server: Ec2TestServer): string {
  const bad = (message: string) => new Ec2FaultError({ status: 400, code: 'InvalidParameterValue', message });
  const max = req.params.MaxResults === undefined ? undefined : Number(req.params.MaxResults);
  if (max !== undefined && !(Number.isInteger(max) && max >= 5 && max <= 1000)) throw bad('MaxResults must be between 5 and 1000');
  let offset = 0;
  if (req.params.NextToken !== undefined) {
    const m = /^page-(\d+)$/.exec(req.params.NextToken);
    if (!m) throw bad('The pagination token is invalid');
    offset = Number(m[1]);
  }
  const ids = Object.entries(req.params).filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
  const all = server.instances.filter(
    (i) => (ids.length === 0 || ids.includes(i.instanceId)) && matches(i, req.filters, server.ignoreStateFilter),
  );
  const size = Math.min(server.pageSize, max ?? Number.POSITIVE_INFINITY);
  const page = all.slice(offset, offset + size);
  const next = offset + size < all.length ? `page-${offset + size}` : undefined;

  const reservations = new Map<string, FakeInstance[]>();
  for (const i of page) {
    const r = i.reservationId ?? `r-${i.instanceId.replace(/^i-/, '')}`;
    reservations.set(r, [...(reservations.get(r) ?? []), i]);
  }
  const items = [...reservations.entries()].map(
    ([rid, insts]) =>
      `<item><reservationId>${esc(rid)}</reservationId><ownerId>123456789012</ownerId><groupSet/>` +
      `<instancesSet>${insts.map(instanceXml).join('')}</instancesSet></item>`,
  );
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="${NS}">` +
    `<requestId>${req.requestId}</requestId><reservationSet>${items.join('')}</reservationSet>` +
    `${next ? `<nextToken>${next}</nextToken>` : ''}</DescribeInstancesResponse>`
  );
}

function instanceXml(i: FakeInstance): string {
  const state = i.state ?? 'running';
  const opt = (tag: string, v: string | undefined) => (v === undefined ? '' : `<${tag}>${esc(v)}</${tag}>`);
  const tags = Object.entries(i.tags ?? {})
    .map(([k, v]) => `<item><key>${esc(k)}</key><value>${esc(v)}</value></item>`)
    .join('');
  return (
    `<item>${opt('instanceId', i.instanceId)}${opt('imageId', i.imageId ?? 'ami-0123456789abcdef0')}` +
    `<instanceState><code>${STATE_CODES[state]}</code><name>${state}</name></instanceState>` +
    `${opt('privateIpAddress', i.privateIp)}${opt('ipAddress', i.publicIp)}` +
    `${opt('launchTime', i.launchTime ?? '2024-05-01T10:00:00.000Z')}<instanceType>t3.micro</instanceType>` +
    `${tags ? `<tagSet>${tags}</tagSet>` : ''}</item>`
  );
}

/** XML-escape; control characters travel as character references so hostile tags reach the client. */
export function esc(s: string): string {
  return s.replace(/[&<>"'\u0000-\u001f\u007f]/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : c === "'" ? '&apos;' : `&#${c.charCodeAt(0)};`,
  );
}
