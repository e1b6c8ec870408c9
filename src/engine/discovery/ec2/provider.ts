import { DescribeInstancesCommand, type EC2Client, type Filter } from '@aws-sdk/client-ec2';
import type { ChangeHint, Provider } from '../provider.js';
import { sortBackends, type Backend, type BackendSet } from '../../model/backend.js';
import { ExitCode, UserError } from '../../errors.js';
import { sleep } from '../../runtime/clock.js';
import { nullLogger, type Logger } from '../../runtime/logger.js';
import { createEc2Client, ec2Error, isThrottlingError, notEc2, type Ec2ClientOptions, type Ec2Target } from './client.js';
import { parseInstance, type Ec2Selector } from './parse.js';

export type { Ec2Selector } from './parse.js';

export interface Ec2ProviderOptions extends Ec2ClientOptions {
  selector: Ec2Selector;
  /** Poll period (default 15 s). EC2 has no event stream we can use here, so we poll. */
  intervalMs?: number;
  logger?: Logger;
  /** For our own look-ups only (AWS_DEFAULT_REGION, the endpoint named in messages); the SDK reads process.env. */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_INTERVAL_MS = 15_000;
/** After throttling, the poll period doubles per throttled list up to this factor. */
export const MAX_POLL_BACKOFF = 8;
/** A server that never stops handing out NextTokens must not keep us listing forever. */
const MAX_PAGES = 1_000;

/**
 * EC2 instances selected by tags, as backends. `list()` is one full DescribeInstances walk
 * (all pages); `changes()` is a poll tick the generic watcher turns into a re-list.
 *
 * Poll backoff, kept simple: a list that ends throttled (after the SDK's own retries) doubles
 * the poll period, up to 8x; the next successful list resets it. `resyncMs` is the watcher's
 * safety net if ticks stop, so it sits at the longest backed-off period and never outpaces
 * the polls (equal to the interval it would re-list every interval and void the backoff).
 */
export class Ec2Provider implements Provider {
  readonly name = 'ec2';
  readonly resyncMs: number;
  readonly intervalMs: number;
  readonly client: EC2Client;
  readonly target: Ec2Target;
  /** Running instances skipped at the last list, with why (shown by `discover`, logged in watch). */
  skipped: Array<{ id: string; reason: string }> = [];
  private readonly log: Logger;
  private pollFactor = 1;

  constructor(private readonly opts: Ec2ProviderOptions) {
    const intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
    if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
      throw new UserError(`invalid EC2 poll interval ${intervalMs} ms`, 'pass a positive --interval', ExitCode.usage);
    }
    this.intervalMs = intervalMs;
    this.resyncMs = intervalMs * MAX_POLL_BACKOFF;
    const { client, target } = createEc2Client(opts, opts.env);
    this.client = client;
    this.target = target;
    this.log = opts.logger ?? nullLogger;
  }

  /** The current poll period (grows after throttling). */
  get pollMs(): number {
    return this.intervalMs * this.pollFactor;
  }

  async list(signal?: AbortSignal): Promise<BackendSet> {
    const { selector } = this.opts;
    const Filters = ec2Filters(selector.tags);
    const backends: Backend[] = [];
    const skipped: typeof this.skipped = [];
    let token: string | undefined;
    const seen = new Set<string>();
    try {
      for (let page = 0; ; page++) {
        if (page >= MAX_PAGES || (token !== undefined && seen.has(token))) {
          throw new UserError(`EC2 pagination did not end after ${page} pages`, 'check --endpoint: the server keeps repeating NextToken', ExitCode.failure);
        }
        if (token !== undefined) seen.add(token);
        // MaxResults only cuts round trips; EC2 refuses it together with InstanceIds (unused here).
        const out = await this.client.send(new DescribeInstancesCommand({ Filters, MaxResults: 1000, NextToken: token }), { abortSignal: signal });
        // EC2 always sends <reservationSet/>; without it this is not EC2 talking, and an
        // empty list here would drain every backend.
        if (!Array.isArray(out.Reservations)) throw notEc2(this.target, 'no reservationSet');
        for (const reservation of out.Reservations) {
          for (const inst of reservation.Instances ?? []) {
            const r = parseInstance(inst, selector);
            if (r?.ok) backends.push(r.backend);
            else if (r) skipped.push({ id: r.id, reason: r.reason });
          }
        }
        token = out.NextToken || undefined;
        if (!token) break;
      }
    } catch (err) {
      if (isThrottlingError(err)) this.backOff();
      throw ec2Error(err, this.target);
    }
    if (this.pollFactor > 1) {
      this.log.info('EC2 no longer throttles, polling at the normal interval', { intervalMs: this.intervalMs });
      this.pollFactor = 1;
    }
    for (const s of skipped) {
      if (!this.skipped.some((p) => p.id === s.id && p.reason === s.reason)) this.log.warn(`skipping instance ${s.id}: ${s.reason}`);
    }
    this.skipped = skipped;
    return sortBackends(backends);
  }

  private backOff(): void {
    const next = Math.min(MAX_POLL_BACKOFF, this.pollFactor * 2);
    if (next !== this.pollFactor) this.log.warn('EC2 is throttling, polling less often', { pollMs: this.intervalMs * next });
    this.pollFactor = next;
  }

  /** A tick every poll period; the watcher re-lists on each. Ends quietly when aborted. */
  async *changes(signal: AbortSignal): AsyncGenerator<ChangeHint> {
    yield { reason: 'connected' };
    while (!signal.aborted) {
      try {
        await sleep(this.pollMs, signal);
      } catch {
        return;
      }
      yield { reason: 'poll' };
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** Running instances only, plus one `tag:KEY` filter per key: EC2 ANDs filters, ORs values. */
export function ec2Filters(tags: Ec2Selector['tags']): Filter[] {
  const byKey = new Map<string, string[]>();
  for (const { key, value } of tags) {
    const values = byKey.get(key) ?? [];
    if (!values.includes(value)) values.push(value);
    byKey.set(key, values);
  }
  return [{ Name: 'instance-state-name', Values: ['running'] }, ...[...byKey].map(([key, Values]) => ({ Name: `tag:${key}`, Values }))];
}
