import { sweepLeftovers } from './support/owned.js';

/** Before any test: remove what test processes killed without their afterAll left behind. */
export default async function setup(): Promise<void> {
  const s = await sweepLeftovers();
  for (const d of s.dirs) process.stderr.write(`test setup: swept the rules and state of a dead test run: ${d}\n`);
  for (const c of s.containers) process.stderr.write(`test setup: removed container ${c} of a dead test run\n`);
  for (const p of s.problems) process.stderr.write(`test setup: could not sweep ${p}\n`);
}
