// Bench-only (bench/fleet/idle-cost.ts preloads it with --require): on SIGUSR2 write where the
// daemon's memory is (process.memoryUsage() and V8's heap spaces) to $MEM_PROBE_OUT.
process.on('SIGUSR2', () => {
  const v8 = require('node:v8');
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().filter((s) => s.space_size > 0).map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
  require('node:fs').writeFileSync(process.env.MEM_PROBE_OUT, JSON.stringify({ memory: process.memoryUsage(), spaces }));
});
