import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { rangedInteger, selectorFlags } from '../../flags.js';
import { mapImage, type MapImageOptions, type MapImageResult } from '../../engine/map-image.js';
import { runMapImageWatch } from '../../engine/dataplane/watch.js';
import { parsePort } from '../../engine/model/validate.js';
import { ExitCode, UserError } from '../../engine/errors.js';
import { mappedText } from '../../ui/map-image.js';
import { CHECK_RANGES, parseCheck } from '../../engine/health/checker.js';
import { MAX_SEED, SPREADS } from '../../engine/dataplane/model.js';
import { parseAffinityTimeout, parseSeed } from '../../engine/map-image-spread.js';

export default class MapImage extends BaseCommand {
  static override summary = 'Spread a host port over the containers of an image, with kernel DNAT (nftables or iptables)';
  static override description = `Programs the kernel so that new connections to PORT on this host are spread evenly over every running container of IMAGE (on CONTAINER_PORT), plus any --backend. Nothing sits in the data path: nftables (the default when nft works) or iptables (a probability cascade) DNAT each new connection. With --spread hash (nft) the backend of a flow is a Maglev table slot picked by a hash of the flow: every host with the same backends and --seed picks the same one, and removing a backend moves few other flows. Backends take weights (IP:PORT@W, label elastic.weight; 0 = no new connections). Every change is one atomic transaction; the mapping is kept in the state file so a restart reconciles. Without --watch the current containers are programmed once (waiting up to --wait seconds for a first one); with --watch it stays in the foreground following Docker events, serves a status socket, and on exit leaves the rules serving (--remove-on-exit removes them). See docs/map-image.md.`;
  static override examples = [
    '<%= config.bin %> map-image 80 elastic-test/web:1 80',
    '<%= config.bin %> map-image 8080 myapp:2 8080 --watch',
    '<%= config.bin %> map-image 80 web:1 80 --watch --check tcp --check-interval 200',
    '<%= config.bin %> map-image 5353 dns:1 53 --protocol udp --dataplane iptables',
    '<%= config.bin %> map-image 80 web:1 80 --address 198.18.0.1 --backend 198.18.0.50:80 --json',
    '<%= config.bin %> map-image 80 web:1 80 --spread hash --seed 7 --backend 198.18.0.50:80@3 --backend 198.18.0.51:80@1',
  ];
  static override enableJsonFlag = true;
  static override args = {
    port: Args.string({ description: 'host port to map (1-65535)', required: true }),
    image: Args.string({ description: 'image whose running containers are the backends (repo:tag or ID)', required: true }),
    containerPort: Args.string({ name: 'CONTAINER_PORT', description: 'port the containers serve on', required: true }),
  };
  static override flags = {
    protocol: Flags.option({ options: ['tcp', 'udp'] as const, default: 'tcp', description: 'protocol of the mapped port' })(),
    address: Flags.string({ description: 'only this local address, IPv4 or IPv6 (IPv6: nft only; default: every local address but 127.0.0.0/8 and ::1)' }),
    dataplane: Flags.option({ options: ['auto', 'nft', 'iptables'] as const, default: 'auto', description: 'kernel data plane (auto: nft when it works, else iptables)' })(),
    network: selectorFlags.network,
    backend: Flags.string({ description: 'static backend IP:PORT[@WEIGHT], IPv6 as [ADDR]:PORT (repeatable; weight 0-256, 0 = no new connections)', multiple: true, helpGroup: 'STATIC' }),
    spread: Flags.option({ options: SPREADS, description: 'how a new connection picks its backend: hash (default on nft: the same backend for a flow on every host with the same backends and --seed; few flows move when a backend goes) or random (the only one on iptables)' })(),
    seed: Flags.string({ description: `with --spread hash: the hash seed, 0-${MAX_SEED} (default: the same constant on every host)` }),
    affinity: Flags.option({ options: ['none', 'client-ip'] as const, description: 'client-ip: a client address keeps its backend while it comes back within --affinity-timeout (nft only)' })(),
    'affinity-timeout': Flags.string({ description: 'with --affinity client-ip: 1s-24h (default 3h)' }),
    'docker-host': selectorFlags['docker-host'],
    watch: Flags.boolean({ char: 'w', description: 'stay in the foreground and follow containers as they start and stop' }),
    'remove-on-exit': Flags.boolean({ description: 'with --watch: remove the mapping when stopped (default: keep serving)', dependsOn: ['watch'] }),
    wait: Flags.integer({ description: 'without --watch: seconds to wait for a first container (0-86400)', default: 60, min: 0, max: 86_400 }),
    check: Flags.string({ description: 'serve a container only once it answers: tcp, http or http:/path (recommended for rolling deploys)', helpGroup: 'HEALTH' }),
    'check-interval': selectorFlags['check-interval'],
    'check-timeout': selectorFlags['check-timeout'],
    rise: rangedInteger('successes before a container is served', 1, CHECK_RANGES.rise),
    fall: selectorFlags.fall,
  };

  async run(): Promise<MapImageResult | void> {
    const { args, flags } = await this.parse(MapImage);
    const logger = this.makeLogger(flags, 'map-image');
    if (!args.image.trim()) throw new UserError('IMAGE is empty', 'give an image reference, e.g. elastic-test/web:1', ExitCode.usage);
    const opts: MapImageOptions = {
      port: parsePort(args.port, 'PORT'),
      image: args.image,
      containerPort: parsePort(args.containerPort, 'CONTAINER_PORT'),
      protocol: flags.protocol,
      address: flags.address,
      dataplane: flags.dataplane,
      network: flags.network,
      staticBackends: flags.backend ?? [],
      spread: flags.spread,
      seed: flags.seed === undefined ? undefined : parseSeed(flags.seed),
      affinity: flags.affinity,
      affinityTimeoutS: flags['affinity-timeout'] === undefined ? undefined : parseAffinityTimeout(flags['affinity-timeout']),
      dockerHost: flags['docker-host'],
      waitMs: flags.wait * 1000,
      check: flags.check ? parseCheck(flags.check, { intervalMs: flags['check-interval'], timeoutMs: flags['check-timeout'], rise: flags.rise, fall: flags.fall }) : undefined,
      logger,
    };
    if (flags.watch) {
      await runMapImageWatch({ ...opts, removeOnExit: flags['remove-on-exit'] }, this.shutdownSignal);
      return;
    }
    const result = await mapImage(opts, this.shutdownSignal);
    if (!this.jsonEnabled()) process.stdout.write(mappedText(result));
    return result;
  }
}
