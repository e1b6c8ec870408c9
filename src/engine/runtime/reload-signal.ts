/**
 * SIGHUP for the daemon (`elastic run`). Node's default for SIGHUP is to end the process, so a
 * reload sent while the daemon is still starting (systemd's ExecReload, an operator's
 * `kill -HUP` right after a restart) would kill it without a word. `bin/run.js` therefore takes
 * SIGHUP from the first line for `elastic run` and only remembers it (`EARLY_HUP`); once the
 * daemon can reload, `onReloadSignal` replaces that listener and replays a remembered SIGHUP once,
 * since the config may have changed after the daemon read it.
 */
export const EARLY_HUP = Symbol.for('elastic.earlyHup');

interface EarlyHup {
  listener: () => void;
  count: number;
}

export function onReloadSignal(reload: () => void): void {
  const early = (globalThis as Record<symbol, EarlyHup | undefined>)[EARLY_HUP];
  process.on('SIGHUP', reload);
  if (early) {
    process.removeListener('SIGHUP', early.listener);
    delete (globalThis as Record<symbol, EarlyHup | undefined>)[EARLY_HUP];
    if (early.count > 0) reload();
  }
}
