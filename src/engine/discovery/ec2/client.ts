import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { ExitCode, UserError } from '../../errors.js';
import { isSafeText, printable } from '../../model/validate.js';

/**
 * The one place an EC2Client is made, and the one place AWS errors are translated into messages
 * an operator can act on. `deploy` (RunInstances/TerminateInstances) reuses both.
 *
 * Everything the SDK resolves by itself stays the SDK's: credentials (env, AWS_PROFILE or
 * `profile`, SSO, instance role), region from the profile's config, AWS_ENDPOINT_URL_EC2 /
 * AWS_ENDPOINT_URL. We only add what the SDK does not: `--region`/AWS_DEFAULT_REGION,
 * `--endpoint` validation, timeouts and a retry budget.
 */
export interface Ec2ClientOptions {
  region?: string;
  profile?: string;
  endpoint?: string;
  /** Attempts per call, first included (default 4). Throttling and network errors are retried. */
  maxAttempts?: number;
  /** Tests only: the SDK's retry strategy with a short delay (a real one, not a mock). */
  retryStrategy?: EC2ClientConfig['retryStrategy'];
}

/** What the client talks to, for messages. */
export interface Ec2Target {
  readonly region?: string;
  readonly profile?: string;
  /** For messages: `the EC2 endpoint <url>`, or `EC2 in <region>` for the SDK's default. */
  readonly display: string;
}

export const DEFAULT_MAX_ATTEMPTS = 4;

export function createEc2Client(opts: Ec2ClientOptions = {}, env: NodeJS.ProcessEnv = process.env): { client: EC2Client; target: Ec2Target } {
  // The SDK reads AWS_REGION (and the profile's region) but not the older AWS_DEFAULT_REGION.
  const region = opts.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
  if (region !== undefined && !/^[a-z0-9-]{1,40}$/.test(region)) {
    throw new UserError(`invalid AWS region "${printable(region, 40)}"`, 'use a region name such as eu-west-1 (--region or AWS_REGION)', ExitCode.usage);
  }
  if (opts.profile !== undefined && (!opts.profile || !isSafeText(opts.profile, 128))) {
    throw new UserError(`invalid AWS profile name "${printable(opts.profile, 40)}"`, 'pass a profile name from ~/.aws/config', ExitCode.usage);
  }
  const endpoint = opts.endpoint ? checkEndpoint(opts.endpoint) : undefined;
  const shown = endpoint ?? env.AWS_ENDPOINT_URL_EC2 ?? env.AWS_ENDPOINT_URL;
  const maxAttempts = opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const config: EC2ClientConfig = {
    region,
    profile: opts.profile,
    endpoint,
    maxAttempts,
    // Standard mode: throttling and transient errors are retried with jittered backoff and a
    // retry quota, so a throttled account is not hammered further.
    retryMode: 'standard',
    // Without these a black-holed endpoint would hang a one-shot `discover` forever.
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 30_000 },
  };
  if (opts.retryStrategy) config.retryStrategy = opts.retryStrategy;
  // We pin this SDK release and support Node 20 on purpose; its multi-line "releases after
  // January 2027 need Node 22" warning would land on every operator's stderr. Opt-out kept.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const client = new EC2Client(config);
  return {
    client,
    target: { region, profile: opts.profile, display: shown ? `the EC2 endpoint ${printable(shown, 120)}` : `EC2 in ${region ?? 'the configured region'}` },
  };
}

function checkEndpoint(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    /* reported below */
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    throw new UserError(`invalid EC2 endpoint "${printable(text, 80)}"`, 'use a URL such as https://ec2.eu-west-1.amazonaws.com', ExitCode.usage);
  }
  return text;
}

type AwsError = Error & {
  code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $fault?: 'client' | 'server';
  errors?: unknown[];
};

const NETWORK_CODES = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE'];
const DENIED = ['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'AuthFailure', 'Blocked', 'OptInRequired'];
const THROTTLED = ['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'EC2ThrottledException'];
const BAD_KEYS = ['InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException', 'ExpiredToken', 'RequestExpired'];

/**
 * Translate an SDK error into a UserError with a hint; aborts and unknown errors pass through
 * (the latter are bugs, reported as such). `action` names the IAM action for permission errors.
 */
export function ec2Error(err: unknown, target: Ec2Target, action = 'ec2:DescribeInstances'): unknown {
  if (err instanceof UserError) return err;
  if (!(err instanceof Error) || err.name === 'AbortError') return err;
  const e = err as AwsError;
  const cause = { cause: err };
  const msg = printable(e.message ?? '', 200);
  const where = target.display;

  if (e.name === 'CredentialsProviderError' || /Could not load credentials|Could not resolve credentials/i.test(e.message)) {
    if (target.profile) {
      return new UserError(`no AWS credentials for profile "${printable(target.profile, 60)}"`, 'check ~/.aws/credentials and ~/.aws/config, or log in (aws sso login)', ExitCode.permission, cause);
    }
    return new UserError('no AWS credentials found', 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE/--profile, or run on an instance with an IAM role', ExitCode.permission, cause);
  }
  if (/Region is missing/i.test(e.message)) {
    return new UserError('no AWS region configured', 'pass --region or set AWS_REGION', ExitCode.usage, cause);
  }
  const code = e.code ?? networkCodeOf(e);
  if (e.name === 'TimeoutError' || (code && NETWORK_CODES.includes(code))) {
    return new UserError(`cannot reach ${where} (${code ?? 'timeout'})`, 'check the network, --region and --endpoint / AWS_ENDPOINT_URL_EC2', ExitCode.unavailable, cause);
  }
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) return err; // not an answer from AWS: a bug, keep the stack
  const name = printable(e.name, 60);
  if (/Deserialization error|XML parse error/i.test(e.message) || status === 404 || status === 405) {
    return notEc2(target, status === 404 || status === 405 ? `HTTP ${status}` : 'unreadable answer', cause);
  }
  if (DENIED.includes(e.name)) {
    return new UserError(`EC2 denied ${action} (${name}): ${msg}`, `grant ${action} to these credentials (IAM policy), and check the region`, ExitCode.permission, cause);
  }
  if (BAD_KEYS.includes(e.name)) {
    return new UserError(`EC2 rejected the AWS credentials (${name}): ${msg}`, 'check the access key and secret, the session token, and the clock', ExitCode.permission, cause);
  }
  if (isThrottlingError(e)) {
    const retries = Math.max(0, (e.$metadata?.attempts ?? 1) - 1);
    return new UserError(`throttled by EC2 after ${retries} retries (${name})`, 'raise --interval, or run fewer pollers against this account', ExitCode.unavailable, cause);
  }
  if (status >= 500) {
    return new UserError(`${where} failed (${name}, HTTP ${status}): ${msg}`, 'retry later; check the AWS Health Dashboard', ExitCode.unavailable, cause);
  }
  return new UserError(`EC2 answered ${name}: ${msg}`, 'check the flags (--tag, --region) and the request', ExitCode.failure, cause);
}

/** The endpoint answered, but not as the EC2 API does (a wrong --endpoint, a proxy's page). */
export function notEc2(target: Ec2Target, what: string, options?: { cause?: unknown }): UserError {
  return new UserError(`${target.display} did not answer as the EC2 API (${what})`, 'check --endpoint / AWS_ENDPOINT_URL_EC2 and any HTTP proxy', ExitCode.unavailable, options);
}

/** True for an SDK error that is EC2 throttling us (already retried by the SDK). */
export function isThrottlingError(err: unknown): boolean {
  const e = err as AwsError | undefined;
  return !!e && (THROTTLED.includes(e.name) || e.$metadata?.httpStatusCode === 429);
}

/** Node 20 may wrap connect errors in an AggregateError (several addresses tried). */
function networkCodeOf(e: AwsError): string | undefined {
  for (const inner of e.errors ?? []) {
    const c = (inner as { code?: unknown }).code;
    if (typeof c === 'string') return c;
  }
  const c = (e.cause as { code?: unknown } | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}
