import { Flags } from '@oclif/core';
import { basename } from 'node:path';
import { BaseCommand } from '../base-command.js';
import { selectorFlags } from '../flags.js';

// `--check` means "validate only" here (as in the issue); discovery's active health check is
// `select.check` in --config, and the proxy checks servers itself (--lb-check).
const { check: _discoveryCheck, 'check-interval': _ci, 'check-timeout': _ct, rise: _rise, fall: _fall, ...discoveryFlags } = selectorFlags;
import { ExitCode, UserError } from '../engine/errors.js';
import { loadServicesFile, serviceFromFlags } from '../engine/frontends/services.js';
import type { RenderResult } from '../engine/frontends/renderer.js';
import type { ProxyKind } from '../engine/frontends/model.js';
import { toIdent } from '../engine/model/validate.js';
import { renderOnce, renderWatch, type RenderOptions } from '../engine/render.js';
import { renderLabelsOnce, renderLabelsWatch } from '../engine/render-labels.js';
import { labelRenderOptions } from '../engine/frontends/label-flags.js';
import { parseWait, renderResultText } from '../ui/render.js';
import { applyTlsFlags } from '../engine/frontends/tls/tls-flags.js';
import type { ServicesFileExtras } from '../engine/frontends/services.js';

export default class Render extends BaseCommand {
  static override summary = 'Render HAProxy, nginx or Varnish config from discovered backends; validate, swap atomically, apply without dropping requests';
  static override description = `Renders a config from a built-in or custom template with the backends discovery finds (flags as in discover, or several services from --config FILE), validates it with the proxy itself (haproxy -c, nginx -t, varnishd -C), swaps it in atomically keeping the last good file, applies it and verifies it took effect; on failure the last good file is restored.

Stop a proxy that --start started with \`elastic render stop --service NAME\` (see render stop --help).

HAProxy: server slots are pre-allocated, so adding and removing backends goes through the runtime API with no reload; structural changes make a seamless master-worker reload. --start starts HAProxy (or nginx) when it is not running, and --watch restarts it if it dies. nginx: graceful reload, verified by new workers. Varnish: vcl.load + vcl.use. Anything else: --reload-command.

Guardrails: fewer than --min-backends backends, or more than --max-change percent removed at once (without --force), is refused and the last good config keeps serving (exit 6). --dry-run prints a semantic and a text diff and touches nothing; --check validates only.`;
  static override examples = [
    '<%= config.bin %> render --service web --bind 127.0.0.1:8080 --image elastic-test/web:1 --port 80 --start',
    '<%= config.bin %> render --service web --bind 8080 --image elastic-test/web:1 --port 80 --dry-run',
    '<%= config.bin %> render --config services.yaml --start --watch --wait 200ms:2s',
    '<%= config.bin %> render --service api --bind 8080 --host api.example.com --path /v1 --strip-prefix --label app=api --start',
    '<%= config.bin %> render --proxy nginx --service web --bind 8080 --label app=web --output /etc/nginx/nginx.conf',
    '<%= config.bin %> render --proxy haproxy --config services.yaml --master-socket /run/haproxy-master.sock --stats-socket /run/haproxy.sock --output /etc/haproxy/haproxy.cfg',
    '<%= config.bin %> render --proxy varnish --config services.yaml --varnish-name /var/lib/varnish/lb --output /etc/varnish/elastic.vcl',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...discoveryFlags,
    config: Flags.string({ char: 'c', description: 'YAML file with several services (see docs/render.md)', helpGroup: 'SERVICE' }),
    bind: Flags.string({ description: 'listen address of the service: PORT or ADDRESS:PORT (default address 127.0.0.1)', helpGroup: 'SERVICE' }),
    mode: Flags.option({ options: ['http', 'tcp'] as const, description: 'proxy mode', helpGroup: 'SERVICE' })(),
    balance: Flags.option({ options: ['roundrobin', 'leastconn', 'source'] as const, description: 'balancing algorithm', helpGroup: 'SERVICE' })(),
    'lb-check': Flags.string({ description: "the proxy's own server check: tcp, none, http or http:/path (default tcp)", helpGroup: 'SERVICE' }),
    'lb-check-interval': Flags.integer({ description: "the proxy's check interval, ms", min: 100, helpGroup: 'SERVICE' }),
    host: Flags.string({ description: 'http: serve only this Host (repeatable; *.example.com for a wildcard); other hosts get a 404 page. Several services on one bind: --config (docs/render.md "Routing")', multiple: true, helpGroup: 'SERVICE' }),
    path: Flags.string({ description: 'http: serve only this path prefix (repeatable, e.g. /api); other paths get a 404 page', multiple: true, helpGroup: 'SERVICE' }),
    'routes-from-labels': Flags.boolean({ description: 'serve every running container labelled elastic.http.host on --bind, routed by its labels (docs/render.md "Routes from container labels"); --label/--network narrow the containers', exclusive: ['config', 'host', 'path'], helpGroup: 'SERVICE' }),
    'strip-prefix': Flags.boolean({ description: 'remove the matched --path prefix before the request goes to a backend (/api/x -> /x)', dependsOn: ['path'], helpGroup: 'SERVICE' }),
    'tls-bind': Flags.string({ description: 'also serve the routed bind over https here: PORT or ADDRESS:PORT (docs/render.md "TLS")', helpGroup: 'TLS' }),
    'cert-dir': Flags.string({ description: 'certificates: one HOST.pem per host (chain + key), _.example.com.pem for *.example.com, default.pem', helpGroup: 'TLS' }),
    'default-cert': Flags.string({ description: 'the certificate for names no other certificate has (PEM: chain + key)', helpGroup: 'TLS' }),
    'tls-cert': Flags.string({ description: 'one service: its certificate file (PEM: chain + key)', helpGroup: 'TLS' }),
    'tls-redirect': Flags.boolean({ description: 'one service: redirect http requests to https (301)', helpGroup: 'TLS' }),
    hsts: Flags.integer({ description: 'one service: Strict-Transport-Security max-age in seconds on https responses (0-63072000)', min: 0, max: 63_072_000, helpGroup: 'TLS' }),
    'error-page-503': Flags.string({ description: 'http: the page (a small HTML file owned by root or you) an empty service answers with 503 and Retry-After, instead of the built-in one', helpGroup: 'SERVICE' }),
    slots: Flags.integer({ description: 'HAProxy: minimum pre-allocated server slots per service (grows to the next power of two)', min: 1, max: 4096, helpGroup: 'SERVICE' }),
    proxy: Flags.option({ options: ['haproxy', 'nginx', 'varnish'] as const, default: 'haproxy', description: 'what to render for', helpGroup: 'PROXY' })(),
    output: Flags.string({ char: 'o', description: 'config file to write (default: under the state dir)', helpGroup: 'PROXY' }),
    template: Flags.string({ description: 'custom Handlebars template (default: the built-in one for --proxy)', helpGroup: 'PROXY' }),
    start: Flags.boolean({ description: 'start HAProxy/nginx if not running (and restart it under --watch)', helpGroup: 'PROXY' }),
    'stats-socket': Flags.string({ description: 'HAProxy runtime API socket', helpGroup: 'PROXY' }),
    'master-socket': Flags.string({ description: 'HAProxy master CLI socket (-S), for seamless reloads', helpGroup: 'PROXY' }),
    pidfile: Flags.string({ description: 'HAProxy/nginx pid file', helpGroup: 'PROXY' }),
    'varnish-name': Flags.string({ description: 'Varnish: varnishd -n (working directory) to talk to', helpGroup: 'PROXY' }),
    'reload-command': Flags.string({ description: 'reload with this command instead, a JSON array: \'["systemctl","reload","haproxy"]\'', helpGroup: 'PROXY' }),
    'min-backends': Flags.integer({ description: 'refuse to render a service with fewer backends (0 allows empty)', default: 1, min: 0, helpGroup: 'GUARDRAILS' }),
    'max-change': Flags.integer({ description: 'refuse to remove more than this percent of a service\'s backends at once', default: 50, min: 0, max: 100, helpGroup: 'GUARDRAILS' }),
    force: Flags.boolean({ description: 'apply even beyond --max-change (it does not lift --min-backends: pass --min-backends 0 to allow an empty service)', helpGroup: 'GUARDRAILS' }),
    'no-apply': Flags.boolean({ description: 'write the validated file only: no reload, no start (for hosts where another tool reloads the proxy)', helpGroup: 'PROXY', exclusive: ['start', 'reload-command'] }),
    'dry-run': Flags.boolean({ description: 'print what would change (semantic + text diff); touch nothing', exclusive: ['check', 'watch'] }),
    check: Flags.boolean({ description: 'render and validate only', exclusive: ['watch'] }),
    watch: Flags.boolean({ char: 'w', description: 'stay running: follow discovery and apply changes' }),
    wait: Flags.string({ description: 'with --watch: apply after MIN of quiet, at most MAX after a change; never more often than MIN', default: '200ms:2s' }),
    'instance-name': Flags.string({ description: 'name of this render (state, status socket); default: the service or config file name' }),
  };

  async run(): Promise<RenderResult | void> {
    const { flags } = await this.parse(Render);
    const logger = this.makeLogger(flags, 'render');
    const labels = flags['routes-from-labels'];
    const fromFile: ServicesFileExtras | null = flags.config ? {} : null;
    const listed = labels ? [] : flags.config ? await loadServicesFile(flags.config, logger, fromFile!) : [serviceFromFlags({ ...flags, check: undefined }, logger)];
    const { services, tls } = applyTlsFlags(listed, flags, labels ? null : fromFile);
    const instance = toIdent(flags['instance-name'] ?? (labels ? 'labels' : flags.config ? basename(flags.config).replace(/\.[^.]*$/, '') : services[0]!.spec.name));
    let reloadCommand: string[] | undefined;
    if (flags['reload-command']) {
      try {
        reloadCommand = JSON.parse(flags['reload-command']) as string[];
        if (!Array.isArray(reloadCommand) || reloadCommand.length === 0 || !reloadCommand.every((a) => typeof a === 'string')) throw new Error('not an array of strings');
      } catch {
        throw new UserError('--reload-command must be a JSON array of strings', 'e.g. --reload-command \'["systemctl","reload","haproxy"]\'', ExitCode.usage);
      }
    }
    const opts: RenderOptions = {
      instance,
      proxy: flags.proxy as ProxyKind,
      services,
      output: flags.output,
      template: flags.template,
      start: flags.start,
      haproxy: { statsSocket: flags['stats-socket'], masterSocket: flags['master-socket'], pidFile: flags.pidfile },
      nginx: { pidFile: flags.pidfile },
      varnish: { instance: flags['varnish-name'] },
      reloadCommand,
      noApply: flags['no-apply'],
      tls,
      guard: { minBackends: flags['min-backends'], maxChangePct: flags['max-change'], force: flags.force },
      logger,
    };
    const json = this.jsonEnabled();
    const fromLabels = labels ? labelRenderOptions(opts, { ...flags, check: undefined }, logger) : null;
    if (flags.watch) {
      const wait = parseWait(flags.wait);
      if (!wait) throw new UserError(`invalid --wait "${flags.wait}"`, 'write MIN:MAX, e.g. 200ms:2s or 5s:30s', ExitCode.usage);
      const onResult = (r: RenderResult) => (json ? this.ndjson(r) : r.action !== 'none' && process.stdout.write(renderResultText(r)));
      if (fromLabels) await renderLabelsWatch(fromLabels, { waitMinMs: wait.minMs, onResult }, this.shutdownSignal);
      else await renderWatch(opts, { waitMinMs: wait.minMs, waitMaxMs: wait.maxMs, onResult }, this.shutdownSignal);
      return;
    }
    const mode = { dryRun: flags['dry-run'], check: flags.check };
    const result = fromLabels ? await renderLabelsOnce(fromLabels, mode) : await renderOnce(opts, mode);
    if (!json) process.stdout.write(renderResultText(result));
    return result;
  }
}
