import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { runEdge, DEFAULT_POLICY, type EdgeListener } from '../../engine/proxy.js';
import { ExitCode, UserError } from '../../engine/errors.js';
import { parseKeyValue, parsePort } from '../../engine/model/validate.js';
import { commandAfterDashDash, rejectStrayArgs, secondsFlag, tokenFileFlag } from '../../proxy-flags.js';
import { listeningJson, listeningText } from '../../ui/proxy.js';

export default class ProxyEdge extends BaseCommand {
  static override summary = 'Hold client connections and hand each to a node with a free slot, starting nodes when none has room';
  static override description = `Listens for clients (per-port routes with -p, HTTP Host routing with --http-port, TLS SNI passthrough with --tls-port; with --warm haproxy, the default, an HAProxy it drives owns these ports and connects clients straight to the apps of nodes on this host once a route is warm, the edge holding only what HAProxy cannot place) and for nodes (--node-port, 127.0.0.1 by default, HMAC-authenticated with the shared token from $ELASTIC_EDGE_TOKEN or --token-file). A client goes to an idle pull connection of a node of its route; otherwise it waits in a bounded queue (--max-queue, --queue-timeout: then HTTP clients get 503 with Retry-After, TCP clients a close). When clients wait and no capacity is coming, the edge runs the start command given after -- (an argument array, never a shell string) with ELASTIC_EDGE, ELASTIC_ROUTE, ELASTIC_EDGE_TOKEN (a token for that route only) and ELASTIC_INSTANCE in its environment, rate-limited and within --min/--max-instances; nodes it started that stay idle for --idle-timeout are stopped. Serves the status socket edge.<name>.sock (per-route queued, active, capacity, nodes, starts, timeouts, wait p50/p99; drain action). On SIGINT/SIGTERM it stops accepting, answers queued clients, lets clients in flight finish (--stop-grace), then stops the instances it started. See docs/proxy.md.`;
  static override examples = [
    '<%= config.bin %> proxy edge -p 8080 -- <%= config.bin %> proxy node -- node server.js',
    '<%= config.bin %> proxy edge -p 8080 --max-instances 4 --idle-timeout 300 -- <%= config.bin %> proxy node --concurrency 8 -- ./app',
    '<%= config.bin %> proxy edge --http-port 8080 --host api.example.com=api --host www.example.com=web -- <%= config.bin %> proxy node -- ./serve',
    'ELASTIC_EDGE_TOKEN=$(cat /etc/elastic/token) <%= config.bin %> proxy edge -p 8080 --node-port 7070 --node-address 0.0.0.0',
  ];
  static override strict = false;
  static override enableJsonFlag = true;
  static override flags = {
    port: Flags.string({ char: 'p', description: 'client port, plain TCP: PORT (route --route) or PORT=ROUTE', multiple: true, multipleNonGreedy: true }),
    'http-port': Flags.string({ description: 'client port routed by the HTTP Host header (see --host)', multiple: true, multipleNonGreedy: true }),
    'tls-port': Flags.string({ description: 'client port routed by TLS SNI, passed through undecrypted (see --host)', multiple: true, multipleNonGreedy: true }),
    host: Flags.string({ description: 'HOST=ROUTE for --http-port/--tls-port (case-insensitive; *.example.com matches subdomains)', multiple: true, multipleNonGreedy: true }),
    'default-route': Flags.string({ description: 'route for a Host/SNI that matches no --host (default: 404 / close)' }),
    route: Flags.string({ description: 'route of -p ports given without =ROUTE', default: 'default' }),
    address: Flags.string({ description: 'address the client ports bind', default: '127.0.0.1' }),
    'node-port': Flags.integer({ description: 'port nodes connect to (0: any free port, passed to started instances)', default: 0, min: 0, max: 65535 }),
    'node-address': Flags.string({ description: 'address the node port binds', default: '127.0.0.1' }),
    'token-file': tokenFileFlag,
    'max-queue': Flags.integer({ description: 'clients waiting per route, beyond that they are refused', default: 1000, min: 1, max: 1_000_000 }),
    'queue-timeout': secondsFlag({ description: 'seconds a client may wait for a node', default: 30_000 }),
    'retry-after': Flags.integer({ description: 'Retry-After seconds in a 503', default: 5, min: 0 }),
    'min-instances': Flags.integer({ description: 'instances kept per route (0: scale to zero)', default: DEFAULT_POLICY.minInstances, min: 0 }),
    'max-instances': Flags.integer({ description: 'most instances per route', default: DEFAULT_POLICY.maxInstances, min: 0 }),
    'idle-timeout': secondsFlag({ description: 'stop a started node that had no client this long (0: never)', default: DEFAULT_POLICY.idleTimeoutMs }),
    'wait-threshold': secondsFlag({ description: 'start one more instance when a client waited this long and nothing is starting', default: DEFAULT_POLICY.waitThresholdMs }),
    'start-burst': Flags.integer({ description: 'instances that may start at once', default: DEFAULT_POLICY.startBurst, min: 1 }),
    'start-rate': Flags.integer({ description: 'instance starts per second after the burst', default: DEFAULT_POLICY.startRatePerSec, min: 1 }),
    'start-timeout': secondsFlag({ description: 'an instance that has not connected by then is stopped', default: 30_000 }),
    'stop-grace': secondsFlag({ description: 'on exit: seconds clients in flight may take to finish before nodes and apps are ended', default: 10_000 }),
    'header-timeout': secondsFlag({ description: 'seconds to receive an HTTP request head or TLS ClientHello', default: 10_000 }),
    'header-max': Flags.integer({ description: 'largest request head / ClientHello, bytes', default: 16_384, min: 512, max: 1_048_576 }),
    name: Flags.string({ description: 'status socket name (default: the first client port)' }),
    spare: Flags.boolean({ allowNo: true, description: 'keep one instance per route started and waiting, so a cold start skips its Node start-up (one idle process per route). Default: on when the start command is elastic proxy node (detected), else off; --spare forces it (the command must honour ELASTIC_NODE_SPARE), --no-spare turns it off' }),
    warm: Flags.string({ description: 'haproxy: an HAProxy owns the client ports and connects clients straight to local apps once a route is warm; off: every client goes through the edge', options: ['haproxy', 'off'], default: 'haproxy' }),
  };

  async run(): Promise<void> {
    const { flags, argv } = await this.parse(ProxyEdge);
    const logger = this.makeLogger(flags, 'edge');
    const command = commandAfterDashDash(this.argv);
    rejectStrayArgs(this.argv, argv as string[], 'elastic proxy edge -p PORT -- COMMAND...');
    const listeners: EdgeListener[] = [
      ...(flags.port ?? []).map((p): EdgeListener => {
        const [port, route] = p.includes('=') ? [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] : [p, flags.route];
        return { kind: 'tcp', port: parsePort(port!, '--port'), route };
      }),
      ...(flags['http-port'] ?? []).map((p): EdgeListener => ({ kind: 'http', port: parsePort(p, '--http-port') })),
      ...(flags['tls-port'] ?? []).map((p): EdgeListener => ({ kind: 'tls', port: parsePort(p, '--tls-port') })),
    ];
    const hosts: Record<string, string> = {};
    for (const h of flags.host ?? []) {
      const { key, value } = parseKeyValue(h, '--host');
      hosts[key] = value;
    }
    if (flags['max-instances'] < flags['min-instances']) throw new UserError('--max-instances is below --min-instances', 'raise --max-instances', ExitCode.usage);
    const json = this.jsonEnabled();
    await runEdge(
      {
        address: flags.address,
        listeners,
        hosts,
        defaultRoute: flags['default-route'],
        nodeAddress: flags['node-address'],
        nodePort: flags['node-port'],
        tokenFile: flags['token-file'],
        maxQueue: flags['max-queue'],
        queueTimeoutMs: flags['queue-timeout'],
        retryAfterS: flags['retry-after'],
        headerTimeoutMs: flags['header-timeout'],
        headerMaxBytes: flags['header-max'],
        policy: {
          minInstances: flags['min-instances'],
          maxInstances: flags['max-instances'],
          idleTimeoutMs: flags['idle-timeout'],
          waitThresholdMs: flags['wait-threshold'],
          startBurst: flags['start-burst'],
          startRatePerSec: flags['start-rate'],
        },
        startCommand: command.length ? command : undefined,
        spare: flags.spare ?? 'auto',
        startTimeoutMs: flags['start-timeout'],
        stopGraceMs: flags['stop-grace'],
        warm: flags.warm as 'haproxy' | 'off',
        name: flags.name,
        logger,
      },
      this.shutdownSignal,
      (edge) => {
        if (json) this.ndjson(listeningJson(edge));
        else process.stdout.write(listeningText(edge));
      },
    );
  }
}
