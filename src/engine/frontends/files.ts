import { readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../runtime/state-store.js';

/**
 * The live config file and its neighbours:
 *   <dir>/.<name>.staged   the candidate, validated in place (same directory: rename is atomic)
 *   <dir>/<name>           the live file
 *   <dir>/<name>.last-good the file that was live before the last swap, restored on failure
 * A reader of <name> sees the old or the new config, never a mix, even across a crash.
 */
export function stagedPath(output: string): string {
  return join(dirname(output), `.${basename(output)}.staged`);
}

export function lastGoodPath(output: string): string {
  return `${output}.last-good`;
}

export async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function stage(output: string, text: string): Promise<string> {
  const file = stagedPath(output);
  await writeFileAtomic(file, text);
  return file;
}

export async function discardStaged(output: string): Promise<void> {
  await rm(stagedPath(output), { force: true });
}

/** Swap the validated staged file in; returns the text that was live before (null: none). */
export async function swapIn(output: string): Promise<string | null> {
  const previous = await readIfExists(output);
  if (previous !== null) await writeFileAtomic(lastGoodPath(output), previous);
  await rename(stagedPath(output), output);
  return previous;
}

/** Put the previous live text back (after a failed apply). */
export async function restore(output: string, previous: string | null): Promise<void> {
  if (previous === null) await rm(output, { force: true });
  else await writeFileAtomic(output, previous);
}
