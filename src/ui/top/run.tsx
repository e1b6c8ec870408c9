import React from 'react';
import { render } from 'ink';
import { startTop, type TopOptions } from '../../engine/top.js';
import { describeError } from '../../engine/errors.js';
import { printable } from '../../engine/model/validate.js';
import { TopApp, type TopAppProps } from './App.js';
import type { PendingAction } from './keys.js';

/**
 * The interactive dashboard: the live store, Ink with a capped frame rate on the alternate
 * screen (the shell's scrollback is left as it was), actions sent to the owning socket.
 */
export interface DashboardOptions extends TopOptions {
  color: boolean;
  maxFps: number;
  initial?: TopAppProps['initial'];
}

/** How long an action may take: a drain waits for connections (its own timeout) plus a margin. */
const actionTimeout = (p: PendingAction) => (typeof p.args.timeoutMs === 'number' ? p.args.timeoutMs : 30_000) + 5000;

export function describeActionResult(p: PendingAction, r: Record<string, unknown>): string {
  if (r.ok === false) return `${p.action} refused by ${p.sourceId}: ${printable(String(r.error ?? 'no reason given'), 120)}`;
  if (p.action === 'drain') {
    return r.drained === true ? `drained ${String(p.args.address)}:${String(p.args.port)}` : `${String(p.args.address)}:${String(p.args.port)} out of rotation; ${String(r.remaining ?? '?')} connection(s) still open`;
  }
  if (p.action === 'scale') return `scale ${String(p.args.service)} to ${String(p.args.replicas)}: accepted`;
  return `${p.action} done`;
}

export async function runDashboard(opts: DashboardOptions, signal: AbortSignal): Promise<void> {
  const live = await startTop(opts, signal);
  const onAction = async (p: PendingAction): Promise<string> => {
    let line: string;
    try {
      line = describeActionResult(p, await live.collector.action(p.sourceId, p.action, { ...p.args }, actionTimeout(p)));
    } catch (err) {
      line = `${p.action} via ${p.sourceId} failed: ${describeError(err)}`;
    }
    live.store.note('action', line);
    live.store.flush();
    return line;
  };
  const tty = Boolean(process.stdout.isTTY);
  if (tty) process.stdout.write('\x1b[?1049h\x1b[H');
  const app = render(<TopApp store={live.store} intervalMs={opts.intervalMs} color={opts.color} initial={opts.initial} onAction={onAction} />, {
    maxFps: opts.maxFps,
    exitOnCtrlC: true,
    patchConsole: true,
  });
  const onAbort = () => app.unmount();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await app.waitUntilExit();
  } finally {
    signal.removeEventListener('abort', onAbort);
    live.stop();
    if (tty) process.stdout.write('\x1b[?1049l');
  }
}
