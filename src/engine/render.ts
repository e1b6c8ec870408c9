import { chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { discoverOnce, discoverWatch } from './discover.js';
import type { BackendSet } from './model/backend.js';
import { ExitCode, UserError, describeError } from './errors.js';
import { nullLogger, type Logger } from './runtime/logger.js';
import { sleep } from './runtime/clock.js';
import { pidAlive } from './runtime/pid.js';
import { runDir, stateDir } from './runtime/paths.js';
import { FileStateStore, type StateStore } from './runtime/state-store.js';
import { SyncRunner } from './runtime/runner.js';
import { StatusServer, requestStatus } from './runtime/status.js';
import type { Applier } from './frontends/applier.js';
import { CommandApplier, FileOnlyApplier } from './frontends/command-applier.js';
import { drainSlot, passFor, servicesServing } from './frontends/drain.js';
import type { Guardrails } from './frontends/guardrails.js';
import { HaproxyApplier } from './frontends/haproxy/applier.js';
import type { ProxyKind } from './frontends/model.js';
import { NginxApplier } from './frontends/nginx/applier.js';
import { closingFlagPath } from './frontends/nginx/flag.js';
import { endNginxOrphans } from './frontends/nginx/orphans.js';
import { Renderer, type Drains, type RenderResult } from './frontends/renderer.js';
import type { RenderService } from './frontends/services.js';
import { renderStatus } from './frontends/status.js';
import { compileTemplate, loadTemplate } from './frontends/template.js';
import { VarnishApplier } from './frontends/varnish/applier.js';
import { TlsCerts, watchCertFiles } from './frontends/tls/rotation.js';
import type { CertSources } from './frontends/tls/certs.js';
import type { TlsOptions } from './frontends/tls/tls-data.js';

/**
 * `render` as engine entry points: one pass (`renderOnce`), the live form (`renderWatch`), and
 * the drain request other features (deploy, top) send to a running `render --watch`.
 */
export interface RenderOptions {
  instance: string;
  proxy: ProxyKind;
  services: readonly RenderService[];
  output?: string;
  template?: string;
  /** Start the proxy when it is not running (and restart it under --watch). */
  start?: boolean;
  haproxy?: { statsSocket?: string; masterSocket?: string; pidFile?: string; bin?: string };
  nginx?: { pidFile?: string; errorLog?: string; bin?: string };
  varnish?: { instance?: string };
  reloadCommand?: readonly string[];
  /** Write the validated file only; another tool reloads the proxy. */
  noApply?: boolean;
  guard: Guardrails;
  /** A bind routed even with no service on it (render --routes-from-labels). */
  frontDoor?: { readonly address: string; readonly port: number };
  /** The https bind and where its certificates come from (docs/render.md "TLS"). */
  tls?: TlsOptions;
  /** Where certificate copies go (default <run dir>/render-<name>/certs; --check: a temp dir). */
  certCopies?: string;
  /** --dry-run: certificates are read and checked, nothing is copied. */
  certsReadOnly?: boolean;
  /** Backends already discovered (render --routes-from-labels): renderOnce does not discover. */
  discovered?: Readonly<Record<string, BackendSet>>;
  store?: StateStore;
  /** Drains kept across rebuilt renderers and reloads (elastic run owns one per proxy kind). */
  drains?: Drains;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

const DEFAULT_FILE: Record<ProxyKind, string> = { haproxy: 'haproxy.cfg', nginx: 'nginx.conf', varnish: 'default.vcl' };

/** Where things live by default: the config under the state dir, sockets and pids under the run dir. */
export function defaultPaths(instance: string, proxy: ProxyKind, env: NodeJS.ProcessEnv = process.env) {
  const run = join(runDir(env), `render-${instance}`); // a subdirectory: not mistaken for status sockets
  return {
    output: join(stateDir(env), `render-${instance}`, DEFAULT_FILE[proxy]),
    statsSocket: join(run, 'haproxy.sock'),
    masterSocket: join(run, 'haproxy-master.sock'),
    pidFile: join(run, `${proxy}.pid`),
    errorLog: join(run, 'nginx-error.log'),
    certs: join(run, 'certs'),
  };
}

/** Where a render's certificates come from (undefined: no TLS). */
export function certSources(opts: Pick<RenderOptions, 'tls' | 'services'>): CertSources | undefined {
  if (!opts.tls) return undefined;
  const services = opts.services.flatMap((s) => (s.spec.tls?.cert ? [{ service: s.spec.name, file: s.spec.tls.cert, hosts: s.spec.routes?.hosts ?? [] }] : []));
  return { certDir: opts.tls.certDir, defaultCert: opts.tls.defaultCert, services };
}

const SAFE_PATH = /^\/[A-Za-z0-9_.\/@+-]{1,200}$/;

/** `readOnly` (--dry-run, --check): create no state or run directory. */
export async function buildRenderer(opts: RenderOptions, readOnly = false): Promise<Renderer> {
  if (opts.start && opts.proxy === 'varnish') throw new UserError('--start manages HAProxy and nginx; render does not start varnishd', 'start varnishd yourself (its -n is --varnish-name), then run render without --start', ExitCode.usage);
  if (opts.proxy === 'varnish' && opts.services.some((s) => s.spec.page503 !== undefined)) throw new UserError('a 503 page file is served by HAProxy and nginx; the Varnish template has its own', 'drop error_page_503 / --error-page-503 for --proxy varnish', ExitCode.usage);
  const d = defaultPaths(opts.instance, opts.proxy, opts.env);
  const output = resolve(opts.output ?? d.output);
  const paths = {
    statsSocket: resolve(opts.haproxy?.statsSocket ?? d.statsSocket),
    masterSocket: resolve(opts.haproxy?.masterSocket ?? d.masterSocket),
    pidFile: resolve((opts.proxy === 'nginx' ? opts.nginx?.pidFile : opts.haproxy?.pidFile) ?? d.pidFile),
    errorLog: resolve(opts.nginx?.errorLog ?? d.errorLog),
    // Where nginx workers (nobody) can stat it: nginx/flag.ts.
    closingFlag: closingFlagPath(output),
  };
  for (const [k, p] of Object.entries({ output, ...paths })) {
    // These are printed into configs unquoted: keep them to a plain character set.
    if (!SAFE_PATH.test(p)) throw new UserError(`path for ${k} has characters a config cannot carry: ${p.slice(0, 80)}`, 'use a path of letters, digits and /._@+-', ExitCode.usage);
  }
  // Sockets and pids are private; the config directory is not (varnishd reads VCL as its own user).
  if (!readOnly) {
    for (const dir of new Set([dirname(paths.statsSocket), dirname(paths.pidFile)])) await mkdir(dir, { recursive: true, mode: 0o700 });
    await mkdir(dirname(output), { recursive: true });
  }
  const log = opts.logger ?? nullLogger;
  let applier: Applier;
  const templatePaths: Record<string, string> = opts.proxy === 'nginx' ? { pidFile: paths.pidFile, errorLog: paths.errorLog, closingFlag: paths.closingFlag } : opts.proxy === 'haproxy' ? { statsSocket: paths.statsSocket } : {};
  if (opts.noApply) applier = new FileOnlyApplier(opts.proxy, templatePaths);
  else if (opts.reloadCommand?.length) applier = new CommandApplier(opts.proxy, opts.reloadCommand, output, templatePaths);
  else if (opts.proxy === 'haproxy') applier = new HaproxyApplier({ config: output, ...paths, manage: Boolean(opts.start), bin: opts.haproxy?.bin, logger: log.child('haproxy') });
  else if (opts.proxy === 'nginx') applier = new NginxApplier({ config: output, pidFile: paths.pidFile, errorLog: paths.errorLog, closingFlag: paths.closingFlag, manage: Boolean(opts.start), bin: opts.nginx?.bin, logger: log.child('nginx') });
  else applier = new VarnishApplier({ config: output, instance: opts.varnish?.instance });
  const tpl = await loadTemplate(opts.proxy, opts.template);
  const sources = certSources(opts);
  const certDir = resolve(opts.certCopies ?? d.certs);
  if (sources && !SAFE_PATH.test(certDir)) throw new UserError(`path for certificate copies has characters a config cannot carry: ${certDir.slice(0, 80)}`, 'use a run dir path of letters, digits and /._@+-', ExitCode.usage);
  const certs = sources ? new TlsCerts(sources, certDir, log.child('tls'), !opts.certsReadOnly) : undefined;
  return new Renderer({
    instance: opts.instance,
    output,
    specs: opts.services.map((s) => s.spec),
    template: compileTemplate(opts.proxy, tpl.source, tpl.file),
    applier,
    guard: opts.guard,
    frontDoor: opts.frontDoor,
    store: opts.store ?? new FileStateStore(stateDir(opts.env)),
    logger: log,
    ...(opts.drains ? { drains: opts.drains } : {}),
    ...(certs && opts.tls ? { tls: { options: opts.tls, certs: () => certs.current, manager: certs } } : {}),
  });
}

async function discoverAll(opts: RenderOptions): Promise<Record<string, BackendSet>> {
  const sets = await Promise.all(opts.services.map((s) => discoverOnce({ ...s.discover, logger: opts.logger })));
  return Object.fromEntries(opts.services.map((s, i) => [s.spec.name, sets[i]!.backends.map((b) => ({ ...b, service: s.spec.name }))]));
}

/** One pass: discover, render, validate, swap, apply (or --check / --dry-run). Refusals throw. */
export async function renderOnce(opts: RenderOptions, mode: { dryRun?: boolean; check?: boolean } = {}): Promise<RenderResult> {
  const readOnly = Boolean(mode.dryRun || mode.check);
  let output = opts.output;
  let scratch: string | null = null;
  if (mode.check && !(await exists(dirname(resolve(opts.output ?? defaultPaths(opts.instance, opts.proxy, opts.env).output))))) {
    // --check creates nothing: a config whose directory does not exist yet is validated in a temp dir.
    scratch = await mkdtemp(join(tmpdir(), 'elastic-render-check-'));
    await chmod(scratch, 0o755); // varnishd compiles the VCL as its own user
    output = join(scratch, basename(opts.output ?? DEFAULT_FILE[opts.proxy]));
  }
  try {
    // --check validates with the proxy, which reads the certificates: copies in a temp dir.
    if (mode.check && opts.tls) scratch ??= await mkdtemp(join(tmpdir(), 'elastic-render-check-'));
    const renderer = await buildRenderer({ ...opts, output, ...(mode.check && opts.tls ? { certCopies: join(scratch!, 'certs') } : {}), certsReadOnly: Boolean(mode.dryRun) }, readOnly);
    await renderer.opts.tls?.manager.prepare(renderer.opts.applier);
    return await renderer.sync(opts.discovered ?? (await discoverAll(opts)), { ...mode, throwOnRefusal: true });
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

export interface WatchOptions {
  waitMinMs: number;
  waitMaxMs: number;
  /** Full re-render at least this often (drift repair). */
  resyncMs?: number;
  /** How often to check that a managed proxy is alive. */
  monitorMs?: number;
  statusDir?: string;
  onResult?: (r: RenderResult) => void;
}

/** The live form: follow discovery, debounce with --wait, serve the status socket, restart a dead proxy. */
export async function renderWatch(opts: RenderOptions, w: WatchOptions, signal: AbortSignal): Promise<void> {
  const log = opts.logger ?? nullLogger;
  const renderer = await buildRenderer(opts);
  const applier = renderer.opts.applier;
  const latest = new Map<string, BackendSet>();
  // A reload replaces the proxy's processes: the liveness monitor does not judge during a pass,
  // and a proxy is only called dead after two checks in a row say so.
  let passing = false;
  /** Drained or draining backends by id; `cancel` ends the wait for sessions of one in progress. */
  const drainedAt = new Map<string, { service: string; endpoint: string; cancel: AbortController }>();
  /** Run a pass now (a drain's fallback, an undrain) and wait for it. */
  const passNow = (reason: string) => async () => {
    runner.request(reason);
    await runner.idle();
  };
  const runner = new SyncRunner(
    async (reason) => {
      if (latest.size < opts.services.length) return; // wait until every service has been listed once
      passing = true;
      const r = await (async () => {
        await renderer.opts.tls?.manager.prepare(applier);
        return renderer.sync(Object.fromEntries(latest), {});
      })().finally(() => (passing = false));
      if (r.action === 'start' && renderer.counters.starts > 1) {
        log.error(`${opts.proxy} was not running; restarted it from the live config`);
        status.event('error', `${opts.proxy} was not running; restarted it`);
      }
      passEvent(status, r, reason);
      w.onResult?.(r);
    },
    watchRunnerOptions(w, log, () => status),
  );
  const status = new StatusServer({
    kind: 'render',
    name: opts.instance,
    dir: w.statusDir,
    config: { proxy: opts.proxy, output: renderer.opts.output, services: opts.services.map((s) => s.spec.name), wait: `${w.waitMinMs}ms:${w.waitMaxMs}ms`, guard: opts.guard },
    services: () => renderStatus(renderer),
    actions: {
      // {service, backend} (backend: id or ADDR:PORT), or the shared contract {address, port}:
      // every rendered service that serves that address is drained (frontends/drain.ts).
      drain: async (args) => {
        const timeoutMs = Number(args.timeoutMs ?? 30_000);
        const targets = args.service
          ? [{ service: String(args.service), backend: String(args.backend ?? '') }]
          : await servicesServing(renderer, String(args.address ?? ''), Number(args.port));
        if (targets.length === 0) return { drained: true, remaining: 0, services: [] };
        const results = [];
        for (const t of targets) {
          const cancel = new AbortController();
          // Known from the start: an undrain during the wait for sessions finds it (and cancels it).
          const onSlot = (s: { backend: string; endpoint: string }) => void drainedAt.set(s.backend, { service: t.service, endpoint: s.endpoint, cancel });
          const r = await drainSlot(renderer, t, { timeoutMs, signal: AbortSignal.any([signal, cancel.signal]), pass: passNow('drain'), logger: log, onSlot });
          status.event('drain', `${r.backend} ${r.cancelled ? 'undrained before its sessions ended' : r.drained ? 'drained' : 'not drained'} after ${r.ms} ms`, t.service);
          results.push(r);
        }
        return { ...results[0]!, drained: results.every((r) => r.drained), services: targets.map((t) => t.service) };
      },
      // Undo a drain: {service, backend} (id or ADDR:PORT) or {address, port}; the backend is
      // rendered again on the next pass if discovery still lists it.
      undrain: async (args) => {
        const ep = args.address ? `${String(args.address)}:${Number(args.port)}` : null;
        const ids = [...drainedAt].filter(([id, d]) => (ep ? d.endpoint === ep : d.service === String(args.service) && (id === String(args.backend) || d.endpoint === String(args.backend)))).map(([id]) => id);
        const results = [];
        for (const id of ids) {
          const d = drainedAt.get(id)!;
          d.cancel.abort();
          renderer.drained.delete(id);
          renderer.draining.delete(id);
          drainedAt.delete(id);
          status.event('undrain', `${id} back in rotation`, d.service);
          results.push({ backend: id, service: d.service, ...(await passFor(renderer, d.service, id, false, passNow('undrain'))) });
        }
        return { undrained: results.length, backends: results };
      },
    },
  });
  await status.listen();

  // Debounce: apply once discovery is quiet for waitMin, or waitMax after the first change.
  let timer: NodeJS.Timeout | null = null;
  let firstAt = 0;
  const poke = (reason: string) => {
    const now = Date.now();
    if (timer === null) firstAt = now;
    else clearTimeout(timer);
    const delay = Math.max(0, Math.min(w.waitMinMs, firstAt + w.waitMaxMs - now));
    timer = setTimeout(() => {
      timer = null;
      runner.request(reason);
    }, delay);
  };

  const monitor = monitorProxy(applier.alive?.bind(applier), { start: opts.start, everyMs: w.monitorMs, passing: () => passing, signal }, () => {
    log.error(`${opts.proxy} is not running; restarting it`);
    status.event('error', `${opts.proxy} is not running; restarting it`);
    runner.request('proxy died');
  });

  const sources = certSources(opts);
  if (sources) watchCertFiles(sources, () => runner.request('certificate file changed'), signal, log);
  const watchers = opts.services.map(async (s) => {
    for await (const u of discoverWatch({ ...s.discover, logger: log }, signal)) {
      latest.set(s.spec.name, u.backends.map((b) => ({ ...b, service: s.spec.name })));
      poke(`${s.spec.name}: ${u.reason}`);
    }
  });
  try {
    runner.start();
    await Promise.race([Promise.all(watchers), new Promise((r) => signal.addEventListener('abort', r, { once: true }))]);
  } finally {
    clearInterval(monitor);
    if (timer) clearTimeout(timer);
    runner.stop();
    await runner.idle();
    await status.close();
    await Promise.allSettled(watchers);
  }
}

/** A pass's result as a status event (render --watch, and its --routes-from-labels form). */
export function passEvent(status: StatusServer, r: RenderResult, reason: string): void {
  if (r.action === 'refused') status.event('refused', r.reason);
  else if (r.action !== 'none') status.event(r.action, `${r.reason} (${reason}, ${r.ms} ms)`);
}

/** The pass runner of a watch: debounce bounds, and a failed pass logged and told as an event (the last good config keeps serving). */
export function watchRunnerOptions(w: { waitMinMs: number; resyncMs?: number }, log: Logger, status: () => StatusServer) {
  return {
    minIntervalMs: w.waitMinMs,
    maxIntervalMs: w.resyncMs ?? 60_000,
    onError: (err: unknown) => {
      log.error('render failed; the last good config keeps serving', { error: describeError(err) });
      status().event('error', describeError(err));
    },
  };
}

/**
 * The liveness monitor of a proxy `--start` manages: a proxy is only called dead after two checks
 * in a row say so, and never during a pass (a reload replaces its processes).
 */
export function monitorProxy(alive: (() => Promise<boolean>) | undefined, o: { start?: boolean; everyMs?: number; passing: () => boolean; signal: AbortSignal }, onDead: () => void): NodeJS.Timeout {
  let misses = 0;
  return setInterval(() => {
    if (!o.start || !alive || o.passing()) return;
    void alive().then((up) => {
      misses = up || o.passing() ? 0 : misses + 1;
      if (misses < 2 || o.signal.aborted) return;
      misses = 0;
      onDead();
    });
  }, o.everyMs ?? 1000);
}

/**
 * For deploy/top: ask a running `render --watch` to take a backend out of rotation and answer
 * when its sessions reached 0 (or the timeout passed).
 */
export async function requestDrain(statusSocket: string, service: string, backend: string, timeoutMs = 30_000): Promise<{ ok: boolean; drained?: boolean; sessions?: number; ms?: number; error?: string }> {
  return requestStatus(statusSocket, { op: 'action', action: 'drain', args: { service, backend, timeoutMs } }, timeoutMs + 5000);
}

/**
 * `render stop`: stop the HAProxy or nginx that `render --start` started, found by our pid file
 * and checked to be that proxy's master (a stale pid now used by another process is left alone).
 * Graceful first (HAProxy SIGUSR1 soft stop, nginx SIGQUIT: in-flight requests finish), SIGTERM
 * after `timeoutMs`.
 */
export async function renderStop(o: { instance: string; proxy: ProxyKind; pidFile?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<{ proxy: ProxyKind; pid: number | null; stopped: boolean; forced: boolean; orphans?: number[] }> {
  if (o.proxy === 'varnish') throw new UserError('render never starts varnishd, so it does not stop it', 'stop varnishd the way you started it', ExitCode.usage);
  const pidFile = resolve(o.pidFile ?? defaultPaths(o.instance, o.proxy, o.env).pidFile);
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim().split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 1) return { proxy: o.proxy, pid: null, stopped: false, forced: false };
  if (!pidAlive(pid)) {
    // A master killed with -9 leaves its nginx workers serving: they are what still runs.
    const { ended, left } = o.proxy === 'nginx' ? await endNginxOrphans(pid, o.timeoutMs) : { ended: [], left: [] };
    if (left.length > 0) throw new UserError(`orphaned workers of nginx master ${pid} did not exit (pids ${left.join(', ')})`, 'end them by hand (kill -9)', ExitCode.unavailable);
    return ended.length === 0 ? { proxy: o.proxy, pid: null, stopped: false, forced: false } : { proxy: o.proxy, pid, stopped: true, forced: false, orphans: ended.map((e) => e.pid) };
  }
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
  const ours = o.proxy === 'haproxy' ? /haproxy/.test(cmdline) && cmdline.includes(pidFile) : /^nginx: master process/.test(cmdline);
  if (!ours) throw new UserError(`pid ${pid} in ${pidFile} is not the ${o.proxy} master render started`, 'it may have been replaced; stop the proxy by hand', ExitCode.usage);
  process.kill(pid, o.proxy === 'haproxy' ? 'SIGUSR1' : 'SIGQUIT');
  const end = Date.now() + (o.timeoutMs ?? 30_000);
  while (Date.now() < end && pidAlive(pid)) await sleep(50);
  const forced = pidAlive(pid);
  if (forced) process.kill(pid, 'SIGTERM');
  return { proxy: o.proxy, pid, stopped: true, forced };
}
