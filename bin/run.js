#!/usr/bin/env node
// Fast path for `elastic --version`: answer before loading oclif and the engine.
const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
  const { readFileSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`${pkg.name}/${pkg.version} ${process.platform}-${process.arch} node-${process.version}\n`);
  process.exit(0);
}
// Fast path for `elastic proxy node ... -- APP` (an edge starts these on a client's first request):
// run it without loading oclif, unless the arguments are for oclif (help, JSON, an odd flag).
if (argv[0] === 'proxy' && argv[1] === 'node' && argv.includes('--') && !process.env.ELASTIC_NODE_OCLIF) {
  const { fastNode } = await import('../dist/proxy-node-fast.js');
  if (await fastNode(argv.slice(2))) process.exit(); // exitCode as set; handles left open are not ours to wait for
}
// `elastic run` is a daemon: a SIGHUP while it starts must not end it (Node's default). Remember
// it; the daemon replays it once it can reload (src/engine/runtime/reload-signal.ts).
if (argv[0] === 'run') {
  const early = { count: 0, listener: () => early.count++ };
  globalThis[Symbol.for('elastic.earlyHup')] = early;
  process.on('SIGHUP', early.listener);
  // Keep V8's young generation at its initial size from the start (src/engine/runtime/young-gen.ts:
  // start-up alone may grow it to 32 MB); the operator's own semi-space flags win.
  if (!`${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`.includes('semi-space')) {
    const { setFlagsFromString } = await import('node:v8');
    setFlagsFromString('--semi-space-growth-factor=1');
    globalThis[Symbol.for('elastic.smallYoungGen')] = true;
  }
}
// Always run the compiled commands in dist/: never let oclif look for TypeScript sources (it
// would under NODE_ENV=test or development, and warn on stderr).
globalThis.oclif = { ...globalThis.oclif, enableAutoTranspile: false };
const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
