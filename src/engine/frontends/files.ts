import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ExitCode, UserError } from '../errors.js';

/**
 * The live config file and its neighbours:
 *   <dir>/.<name>.staged   the candidate, validated in place (same directory: rename is atomic)
 *   <dir>/<name>           the live file
 *   <dir>/<name>.last-good the file that was live before the last swap, restored on failure
 * A reader of <name> sees the old or the new config, never a mix, even across a crash.
 *
 * Files here may sit in a directory someone else can write (/etc/haproxy with a group, a
 * shared --output): a symlink is never followed. Reads open with O_NOFOLLOW and refuse a
 * symlink or anything but a regular file; writes create a fresh temp file (O_EXCL, which does
 * not follow a link either) and rename it over the target, which replaces a link rather than
 * writing through it. What we write is never more readable than the file it replaces: the live
 * file's mode, or for a first render 0640 (0644 for VCL: varnishd compiles it as its own
 * unprivileged user).
 */
export const CONFIG_MODE = 0o640;
export const VCL_MODE = 0o644;

export interface LiveFile {
  readonly text: string;
  readonly mode: number;
}

export function stagedPath(output: string): string {
  return join(dirname(output), `.${basename(output)}.staged`);
}

export function lastGoodPath(output: string): string {
  return `${output}.last-good`;
}

/** The live file (null: none). A symlink or a non-file at the path is a user error. */
export async function readLive(file: string): Promise<LiveFile | null> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new UserError(`${file} is a symlink; render does not follow symlinks for the files it manages`, 'point --output at the real file (or remove the link)', ExitCode.usage);
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new UserError(`${file} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}; --output names the config file to write`, `e.g. --output ${join(file, 'haproxy.cfg')}`, ExitCode.usage);
    return { text: await fh.readFile('utf8'), mode: st.mode & 0o777 };
  } finally {
    await fh.close();
  }
}

export async function readIfExists(file: string): Promise<string | null> {
  return (await readLive(file))?.text ?? null;
}

/** Write `file` atomically through a fresh temp file in its directory; never through a link. */
export async function writeReplacing(file: string, text: string, mode: number): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await fh.chmod(mode); // not widened by the umask's absence, not narrowed by a strict one
    await fh.writeFile(text);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Stage the candidate with the live file's mode (`firstMode` for a first render). */
export async function stage(output: string, text: string, firstMode = CONFIG_MODE): Promise<string> {
  const file = stagedPath(output);
  await writeReplacing(file, text, (await readLive(output))?.mode ?? firstMode);
  return file;
}

export async function discardStaged(output: string): Promise<void> {
  await rm(stagedPath(output), { force: true });
}

/** Swap the validated staged file in; returns the file that was live before (null: none). */
export async function swapIn(output: string): Promise<LiveFile | null> {
  const previous = await readLive(output);
  if (previous !== null) await writeReplacing(lastGoodPath(output), previous.text, previous.mode);
  await rename(stagedPath(output), output);
  return previous;
}

/** Put the previous live file back (after a failed apply). */
export async function restore(output: string, previous: LiveFile | null): Promise<void> {
  if (previous === null) await rm(output, { force: true });
  else await writeReplacing(output, previous.text, previous.mode);
}
