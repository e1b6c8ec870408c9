import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base-command.js';
import { ExitCode } from '../../engine/errors.js';
import { deployUp, type DeployResult } from '../../engine/deploy.js';
import { buildAutoscale, buildSpec } from '../../engine/deploy/options.js';
import { resultText, writeProgress } from '../../ui/deploy.js';

const h = (group: string) => ({ helpGroup: group });

export default class Deploy extends BaseCommand {
  static override summary = 'Run, scale and roll out containers of an image: health-gated, load-balancer aware, with rollback';
  static override description = `Creates or reconciles a replica set of IMAGE on the Docker host (DOCKER_HOST or --docker-host): --replicas containers labelled elastic.managed=true, elastic.service=NAME and elastic.revision (<image id>-<spec hash>), so discover, map-image and render find them. A changed spec (image, env, command, port, labels, limits, health gate) is rolled out: each new replica must pass the health gate (the image's HEALTHCHECK, --health-cmd, --health-http or --health-tcp, healthy for --min-healthy within --health-deadline) before an old one goes, within --max-surge and --max-unavailable; an old one is first drained from every elastic load balancer on this host (map-image, render, edge), then stopped and removed. --failure-threshold failed replicas roll back to the previous revision. With --autoscale-max (or --watch) it stays running: replaces crashed replicas, answers scale requests, and autoscales. IMAGE must be on the Docker host.`;
  static override examples = [
    '<%= config.bin %> deploy elastic-test/web:1 --name web --replicas 3 --port 80',
    '<%= config.bin %> deploy web:2 --name web --replicas 3 --port 80 --health-http /healthz --max-surge 1 --max-unavailable 0',
    '<%= config.bin %> deploy web:2 --name web --replicas 3 --port 80 --dry-run',
    '<%= config.bin %> deploy web:1 --name web --port 80 --autoscale-min 1 --autoscale-max 10 --autoscale-target 20',
  ];
  static override enableJsonFlag = true;
  static override args = { image: Args.string({ description: 'image reference (repo:tag) or image ID, present on the Docker host', required: true }) };
  static override flags = {
    name: Flags.string({ char: 'n', description: 'service name (container names and the elastic.service label)', required: true }),
    replicas: Flags.integer({ char: 'r', description: 'number of replicas (default 1, or --autoscale-min)' }),
    port: Flags.string({ char: 'p', description: 'container port the service listens on', ...h('CONTAINER') }),
    env: Flags.string({ char: 'e', description: 'environment variable NAME=value (repeatable)', multiple: true, ...h('CONTAINER') }),
    label: Flags.string({ char: 'l', description: 'container label k=v (repeatable)', multiple: true, ...h('CONTAINER') }),
    network: Flags.string({ description: 'Docker network (default bridge)', ...h('CONTAINER') }),
    cmd: Flags.string({ description: 'command, run by /bin/sh -c inside the container (default: the image CMD)', ...h('CONTAINER') }),
    memory: Flags.string({ description: 'memory limit, e.g. 256m', ...h('CONTAINER') }),
    cpus: Flags.string({ description: 'CPU limit, e.g. 0.5', ...h('CONTAINER') }),
    'docker-host': Flags.string({ description: 'Docker daemon (default $DOCKER_HOST or unix:///var/run/docker.sock)', ...h('CONTAINER') }),
    'health-cmd': Flags.string({ description: 'health check command run inside the container (a Docker HEALTHCHECK)', ...h('HEALTH') }),
    'health-http': Flags.string({ description: 'health check: GET this path on --port, probed by elastic (2xx/3xx)', ...h('HEALTH') }),
    'health-tcp': Flags.boolean({ description: 'health check: TCP connect to --port', ...h('HEALTH') }),
    'no-health': Flags.boolean({ description: 'no health check: running is enough', ...h('HEALTH') }),
    'health-interval': Flags.string({ description: 'interval of --health-cmd (default 2s)', ...h('HEALTH') }),
    'health-timeout': Flags.string({ description: 'timeout of --health-cmd (default 2s)', ...h('HEALTH') }),
    'health-retries': Flags.integer({ description: 'failures before --health-cmd says unhealthy (default 3)', min: 1, ...h('HEALTH') }),
    'health-start-period': Flags.string({ description: 'start period of --health-cmd (default 0)', ...h('HEALTH') }),
    'min-healthy': Flags.string({ description: 'a new replica must stay healthy this long (default 2s)', ...h('ROLLOUT') }),
    'health-deadline': Flags.string({ description: 'and get there within this long (default 60s)', ...h('ROLLOUT') }),
    'max-surge': Flags.string({ description: 'replicas above --replicas during a rollout: count or % (default 1)', ...h('ROLLOUT') }),
    'max-unavailable': Flags.string({ description: 'replicas below --replicas during a rollout: count or % (default 0)', ...h('ROLLOUT') }),
    'failure-threshold': Flags.integer({ description: 'failed new replicas before rolling back (default 2)', ...h('ROLLOUT') }),
    'drain-timeout': Flags.string({ description: 'longest wait for an old replica to drain (default 30s)', ...h('ROLLOUT') }),
    'stop-timeout': Flags.integer({ description: 'seconds between SIGTERM and SIGKILL on stop (default 10)', min: 0, ...h('ROLLOUT') }),
    'dry-run': Flags.boolean({ description: 'print the plan and change nothing', ...h('ROLLOUT') }),
    watch: Flags.boolean({ char: 'w', description: 'stay running: replace crashed replicas, serve scale requests', ...h('ROLLOUT') }),
    'autoscale-min': Flags.integer({ description: 'autoscaling: fewest replicas', min: 0, ...h('AUTOSCALE') }),
    'autoscale-max': Flags.integer({ description: 'autoscaling: most replicas (turns autoscaling on)', min: 0, ...h('AUTOSCALE') }),
    'autoscale-metric': Flags.string({ description: 'concurrency (edge/HAProxy in-flight), wait (edge queue wait p50 ms) or cpu', ...h('AUTOSCALE') }),
    'autoscale-target': Flags.integer({ description: 'target per replica: requests in flight, wait ms, or CPU %', min: 1, ...h('AUTOSCALE') }),
    'autoscale-interval': Flags.string({ description: 'how often load is sampled (default 2s)', ...h('AUTOSCALE') }),
    'stable-window': Flags.string({ description: 'load is averaged over this window (default 60s)', ...h('AUTOSCALE') }),
    'panic-window': Flags.string({ description: 'short window that scales up at once on a burst (default 6s)', ...h('AUTOSCALE') }),
    'panic-threshold': Flags.integer({ description: 'burst factor over current replicas that means panic (default 2)', min: 1, ...h('AUTOSCALE') }),
    'scale-up-cooldown': Flags.string({ description: 'least time between scale-ups (default 0s)', ...h('AUTOSCALE') }),
    'scale-down-cooldown': Flags.string({ description: 'least time after any scale before a scale-down (default 30s)', ...h('AUTOSCALE') }),
    'scale-down-delay': Flags.string({ description: 'demand must stay lower this long; new traffic restarts it (default 60s)', ...h('AUTOSCALE') }),
    'cpu-fallback': Flags.integer({ description: 'CPU % target when no load-balancer metric is there (default 70)', min: 1, ...h('AUTOSCALE') }),
  };

  async run(): Promise<DeployResult> {
    const { args, flags } = await this.parse(Deploy);
    const spec = buildSpec({ ...flags, image: args.image });
    const autoscale = buildAutoscale({ ...flags, image: args.image });
    const live = !flags['dry-run'] && !this.jsonEnabled() && Boolean(process.stderr.isTTY) && !process.env.CI;
    // The live view owns stderr: info lines would tear it (warnings and --debug still print).
    const logger = this.makeLogger(live && !flags.debug && flags['log-level'] === 'info' ? { ...flags, 'log-level': 'warn' } : flags, 'deploy');
    const progress = live ? (await import('../../ui/deploy-progress.js')).startProgress(spec.service) : null;
    try {
      const result = await deployUp(spec, {
        host: flags['docker-host'],
        logger,
        signal: this.shutdownSignal,
        dryRun: flags['dry-run'],
        watch: flags.watch,
        autoscale,
        onEvent: progress?.onEvent ?? writeProgress,
      });
      progress?.stop();
      if (!this.jsonEnabled()) process.stdout.write(resultText(result));
      // The requested revision did not make it: the service runs the previous one, say so by the exit code.
      if (result.rolledBack) process.exitCode = ExitCode.refused;
      return result;
    } finally {
      progress?.stop();
    }
  }
}
