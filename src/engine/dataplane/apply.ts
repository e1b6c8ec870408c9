import { isIP } from 'node:net';
import { ExitCode, UserError, describeError } from '../errors.js';
import { nullLogger, type Logger } from '../runtime/logger.js';
import type { StateStore } from '../runtime/state-store.js';
import { applyTransaction, readTool, type ToolEnv } from './exec.js';
import { deleteFlows, deleteMappingFlows, listFlows, liveFlows } from './conntrack.js';
import { forwardHookChain, parseIptablesSave, planIptables, renderIptables, type IptKernel, type IptRuleset } from './iptables.js';
import { EMPTY_NFT_KERNEL, nftKernelFrom, parseNftJson, planNft, renderNft, type NftKernel, type NftRuleset } from './nft.js';
import { endpointKey, familyOf, toRuleMapping, type MappingsState, type NftFamily, type RuleMapping } from './model.js';
import { namespaceFor, type Namespace } from './namespace.js';
import { NftSession } from './nft-session.js';
import { readMappings, withMappingsLock, writeMappings } from './store.js';
import { affinityLeavers, purgeAffinity } from './affinity.js';

/**
 * The applier: state in, kernel out. Every change goes through `update()`:
 *   lock -> read state -> mutate (pure) -> write state (the intent) -> apply -> unlock
 *                                         \-> [read kernel] -> render -> plan -/   (beside the write)
 * The state is written before the kernel so that a crash in between leaves an intent that the
 * next run reconciles to; a refused transaction puts the previous state back and reconciles to it.
 *
 * Plans are computed against what this process applied last when nobody else wrote the state
 * since (the generation matches): then only changed chains are written, and adding one backend
 * to a thousand is a few lines. Otherwise (start, periodic resync, another process, a failure)
 * the kernel is read and every desired object rewritten: drift is repaired, nothing duplicated.
 */
export interface ApplierOptions extends ToolEnv {
  store: StateStore;
  logger?: Logger;
}

export interface UpdateResult {
  readonly before: MappingsState;
  readonly after: MappingsState;
  /** Transactions run (0 when the kernel already matched). */
  readonly transactions: number;
  readonly full: boolean;
  readonly ms: number;
  /**
   * Where the time went (ms), in order: lock, stateRead, kernelReadWait (the kernel read, full
   * path; kernelReadOwn is its own duration), plan (render + plan), stateWrite (what was left of
   * the state write, which started with the read), apply (the transactions), conntrack, affinity
   * (clearing entries of backends that left), unlock (removing the lock file).
   */
  readonly phases: Readonly<Record<string, number>>;
}

interface Cache {
  generation: number;
  ipt: IptRuleset;
  nft: NftRuleset;
  /** The `ip6` table (the IPv6 side of nft mappings). */
  nft6: NftRuleset;
  forwardHook?: string;
  iptables: boolean;
}

interface KernelView {
  ipt?: IptKernel;
  nft?: NftKernel;
  nft6?: NftKernel;
  iptables: boolean;
}

export class MappingsApplier {
  private cache: Cache | null = null;
  private ipv6ForwardChecked = false;
  private readonly log: Logger;
  /** nft transactions and reads go through one long-lived `nft -j -i` (nft-session.ts); iptables-restore runs per transaction. */
  private readonly nft: NftSession;
  /** The kernel objects of this state directory (namespace.ts): the only ones read or written. */
  readonly ns: Namespace;

  constructor(private readonly opts: ApplierOptions) {
    this.log = opts.logger ?? nullLogger;
    this.ns = namespaceFor(opts.store.location, opts.env ?? process.env);
    this.nft = new NftSession({ env: opts.env });
  }

  /** Start the nft session now, beside other work (discovery), so that the first sync does not wait for it. */
  warm(): void {
    this.nft.warm();
  }

  /** The nft session's pid (its transactions are ours: nft-monitor.ts tells them from others'). */
  get nftPid(): number | undefined {
    return this.nft.pid;
  }

  /** End the nft session (it also ends by itself when this process exits). */
  close(): void {
    this.nft.close();
  }

  /** Forget what was applied: the next update reads the kernel (periodic resync, after errors). */
  invalidate(): void {
    this.cache = null;
  }

  async update(mutate: (s: MappingsState) => MappingsState, opts: { full?: boolean } = {}): Promise<UpdateResult> {
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    let mark = t0;
    const lap = (name: string) => {
      const now = performance.now();
      phases[name] = (phases[name] ?? 0) + (now - mark);
      mark = now;
    };
    const result = await withMappingsLock(this.opts.store, async () => {
      lap('lock');
      const before = await readMappings(this.opts.store);
      const mutated = mutate(before);
      const after: MappingsState = mutated === before ? before : { ...mutated, generation: before.generation + 1 };
      if (opts.full || this.cache?.generation !== before.generation) this.cache = null;
      lap('stateRead');
      const needNft = after.mappings.some((e) => e.spec.dataplane === 'nft');
      if (needNft || before.mappings.some((e) => e.spec.dataplane === 'nft')) this.nft.warm();
      const readStart = performance.now();
      const kernelRead = this.cache === null ? this.readKernel(needNft).finally(() => (phases.kernelReadOwn = performance.now() - readStart)) : null;
      kernelRead?.catch(() => {}); // awaited below; a write failure must not leave it unhandled
      // The intent is written while the kernel is read and the plan made (the write is I/O, the
      // plan CPU); nothing is applied before the write is done.
      const write = after !== before ? writeMappings(this.opts.store, after) : null;
      const writeFailure = write ? write.then(() => null, (err: unknown) => err ?? new Error('state write failed')) : Promise.resolve(null);
      let kernel: KernelView | null;
      try {
        kernel = kernelRead ? await kernelRead : null;
      } catch (err) {
        throw (await writeFailure) ?? err; // as before: a written intent stays, the next run reconciles to it
      }
      lap('kernelReadWait');
      let transactions: number;
      const full = this.cache === null;
      try {
        transactions = await this.reconcile(before, after, kernel, lap, write);
      } catch (err) {
        this.cache = null;
        const failed = await writeFailure; // (a plan error can come before the write is done)
        if (failed) throw failed; // nothing was applied: the kernel and the state are as before
        if (after !== before) {
          const restored = { ...before, generation: after.generation + 1 };
          await writeMappings(this.opts.store, restored);
          await (async () => this.reconcile(after, restored, await this.readKernel(true), () => {}))().catch((again) => {
            this.cache = null;
            this.log.error('could not restore the previous rules', { error: describeError(again) });
          });
        }
        throw err;
      }
      await this.cleanFlows(before, after);
      lap('conntrack');
      if (full) await this.checkIpv6Forward(after);
      for (const { map, gone, families } of affinityLeavers(before, after)) {
        for (const family of families) {
          const n = await purgeAffinity(this.nft, this.ns.nftTable, map, gone, family).catch((err: unknown) => {
            this.log.warn('could not clear affinity entries of removed backends: their clients follow them until the timeout', { error: describeError(err) });
            return 0;
          });
          if (n > 0) this.log.debug(`cleared ${n} affinity entr${n === 1 ? 'y' : 'ies'} of removed backends`, { map, family });
        }
      }
      lap('affinity');
      return { before, after, transactions, full };
    });
    lap('unlock');
    return { ...result, ms: performance.now() - t0, phases };
  }

  /**
   * IPv6 DNAT is forwarded too, and elastic adds no ip6tables accept (docs/map-image.md, "IPv6"):
   * if the ip6tables FORWARD policy drops (Docker with `ip6tables: true`), say so once per process.
   */
  private async checkIpv6Forward(after: MappingsState): Promise<void> {
    if (this.ipv6ForwardChecked || !after.mappings.some((e) => e.spec.dataplane === 'nft' && toRuleMapping(e).families.includes('ip6'))) return;
    this.ipv6ForwardChecked = true;
    const text = await readTool('ip6tables', ['-S', 'FORWARD'], { env: this.opts.env }).catch(() => null);
    if (/^-P FORWARD (DROP|REJECT)\b/m.test(text ?? '')) {
      this.log.warn('the ip6tables FORWARD policy drops: IPv6 connections DNATed to backends may be dropped (elastic adds no ip6tables accept)', { try: 'accept them: ip6tables -I DOCKER-USER -m conntrack --ctstate DNAT --ctorigdstport PORT -j ACCEPT (docs/map-image.md, "IPv6")' });
    }
  }

  /** Only our objects: iptables-save (ours are picked out) and our own nft table, read side by side. */
  private async readKernel(needNft: boolean): Promise<KernelView> {
    const env = { env: this.opts.env };
    const ipt = readTool('iptables-save', ['-c'], env).then(
      (text) => ({ ipt: parseIptablesSave(text ?? '', this.ns), iptables: true }),
      (err) => {
        if (!(err instanceof UserError) || err.exitCode !== ExitCode.unavailable || !/not found/.test(err.message)) throw err;
        return { ipt: undefined, iptables: false };
      },
    );
    // Both tables, always: an `ip6` table left by a mapping whose IPv6 backends are gone is removed.
    const table = (family: NftFamily) =>
      (needNft ? this.nft.listTable(this.ns.nftTable, family).catch(() => false as const) : Promise.resolve(false as const))
        .then((text) => (text === false ? readTool('nft', ['-j', 'list', 'table', family, this.ns.nftTable], env) : text))
        .then(
          (text) => (text ? parseNftJson(text, this.ns.nftTable, family) : EMPTY_NFT_KERNEL),
          (err) => {
            if (needNft || !(err instanceof UserError) || !/not found/.test(err.message)) throw err;
            return undefined;
          },
        );
    const [i, n, n6] = await Promise.all([ipt, table('ip'), table('ip6')]);
    return { ...i, nft: n, nft6: n6 };
  }

  private async reconcile(before: MappingsState, after: MappingsState, kernel: KernelView | null, lap: (phase: string) => void, gate?: Promise<void> | null): Promise<number> {
    const entries = after.mappings;
    const rule = (kind: 'iptables' | 'nft') => entries.filter((e) => e.spec.dataplane === kind).map(toRuleMapping);
    const all: RuleMapping[] = entries.map(toRuleMapping);
    const needNft = entries.some((e) => e.spec.dataplane === 'nft');
    const cache = kernel ? null : this.cache;
    if (!cache && !kernel) throw new Error('reconcile: neither a cache nor a kernel view');
    const iptables = cache ? cache.iptables : kernel!.iptables;
    if (!iptables && entries.some((e) => e.spec.dataplane === 'iptables')) {
      throw new UserError('iptables-save was not found in PATH', 'install iptables, or use --dataplane nft', ExitCode.unavailable);
    }
    const forwardHook = cache ? cache.forwardHook : kernel!.ipt ? forwardHookChain(kernel!.ipt.filterChains) : undefined;
    if (!iptables && needNft) this.log.warn('iptables is not installed: no FORWARD accept is added (fine unless a FORWARD policy drops)');
    const ipt = renderIptables(rule('iptables'), all, forwardHook, this.ns);
    const nftKernel = cache ? nftKernelFrom(cache.nft) : kernel!.nft;
    const nft = renderNft(rule('nft'), nftKernel, 'ip');
    const nft6Kernel = cache ? nftKernelFrom(cache.nft6) : kernel!.nft6;
    const nft6 = renderNft(rule('nft'), nft6Kernel, 'ip6');

    const iptKernel: Pick<IptKernel, 'chains' | 'hooks' | 'counters'> | undefined = cache
      ? {
          chains: { nat: cache.ipt.nat, filter: cache.ipt.filter },
          hooks: new Map(cache.ipt.hooks.map((h) => [`${h.table} ${h.builtin} ${h.target}`, 1])),
          counters: new Map(),
        }
      : kernel!.ipt;
    const iptText = iptables && iptKernel ? planIptables({ desired: ipt, previous: cache?.ipt, kernel: iptKernel }) : '';
    // Both tables in one nft transaction: a dual-stack change is all or nothing.
    const nftText = (nftKernel ? planNft(nft, nftKernel, cache?.nft, this.ns.nftTable, 'ip') : '') + (nft6Kernel ? planNft(nft6, nft6Kernel, cache?.nft6, this.ns.nftTable, 'ip6') : '');

    // Each table is its own transaction (iptables-nft commits tables separately): order them so
    // that no moment forwards traffic we would drop, or accepts traffic nothing DNATs.
    const natIpt = section(iptText, 'nat');
    const filterIpt = section(iptText, 'filter');
    const removing = before.mappings.some((m) => !after.mappings.some((n) => n.spec.id === m.spec.id));
    const steps: Array<['iptables' | 'nft', string]> = removing
      ? [['nft', nftText], ['iptables', natIpt], ['iptables', filterIpt]]
      : [['iptables', filterIpt], ['iptables', natIpt], ['nft', nftText]];
    lap('plan');
    if (gate) {
      await gate;
      lap('stateWrite');
    }
    let transactions = 0;
    for (const [kind, text] of steps) {
      if (!text) continue;
      this.log.debug(`applying ${kind} transaction`, { lines: text.split('\n').length - 1 });
      await applyTransaction(kind, text, { env: this.opts.env, nft: this.nft });
      transactions++;
    }
    lap('apply');
    this.cache = { generation: after.generation, ipt, nft, nft6, forwardHook, iptables };
    return transactions;
  }

  /**
   * Backends that left a mapping (not drained ones, which wait for their flows). UDP flows to them
   * are deleted (a UDP "flow" has no end: its next datagram would still go to the old backend).
   * TCP flows end by themselves and are kept (graceful removal: established connections continue)
   * unless the backend was a container that is gone, which nothing answers for any more.
   */
  private async cleanFlows(before: MappingsState, after: MappingsState): Promise<void> {
    for (const old of before.mappings) {
      const now = after.mappings.find((m) => m.spec.id === old.spec.id);
      const kept = new Set(now ? now.backends.map((b) => endpointKey(b.address, b.port)) : []);
      if (old.backends.every((b) => kept.has(endpointKey(b.address, b.port)))) continue;
      const { protocol, port } = old.spec;
      // Drained and weight-0 backends count too: their UDP flows were kept only while they stayed.
      const gone = old.backends.filter((b) => !kept.has(endpointKey(b.address, b.port)) && isIP(b.address) !== 0 && (protocol === 'udp' || b.id.startsWith('docker:')));
      const families = toRuleMapping(old).families;
      try {
        if (!now) {
          // The whole mapping: one call per family it had.
          for (const family of families) await deleteMappingFlows(protocol, port, { env: this.opts.env }, family);
          continue;
        }
        for (const family of families) {
          const mine = gone.filter((b) => familyOf(b.address) === family);
          if (mine.length === 0) continue;
          const flows = await listFlows(protocol, port, { env: this.opts.env }, family);
          for (const t of mine) {
            // TIME_WAIT/CLOSE entries carry nothing more: only live flows are worth a delete.
            if (liveFlows(flows, t.address, t.port) > 0) await deleteFlows(protocol, port, t.address, t.port, { env: this.opts.env });
          }
        }
      } catch (err) {
        this.log.debug('could not clean conntrack entries: flows to removed backends end by timeout', { error: describeError(err) });
      }
    }
  }
}

/** One table's part of an iptables-restore text. */
function section(text: string, table: 'nat' | 'filter'): string {
  const start = text.indexOf(`*${table}\n`);
  if (start < 0) return '';
  const end = text.indexOf('COMMIT\n', start);
  return text.slice(start, end + 'COMMIT\n'.length);
}
