import { printable } from '../model/validate.js';

/**
 * Structured logs on stderr. Text by default (`12:00:01 info  docker: reconnected attempt=3`),
 * one JSON object per line with `--log-json`. Values are made printable so a hostile container
 * name cannot inject lines or escape sequences into an operator's terminal.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(component: string): Logger;
}

export interface LoggerOptions {
  level?: Level;
  json?: boolean;
  component?: string;
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = order[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const component = opts.component;
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (order[level] < min) return;
    if (opts.json) {
      const rec: Record<string, unknown> = { time: new Date().toISOString(), level };
      if (component) rec.component = component;
      rec.msg = msg;
      for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) rec[k] = v;
      write(`${JSON.stringify(rec)}\n`);
      return;
    }
    const time = new Date().toISOString().slice(11, 19);
    const kv = Object.entries(fields ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(' ');
    const head = component ? `${component}: ` : '';
    write(`${time} ${level.padEnd(5)} ${head}${printable(msg, 500)}${kv ? ` ${kv}` : ''}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (c) => createLogger({ ...opts, component: component ? `${component}.${c}` : c }),
  };
}

function formatValue(v: string | number | boolean | null | undefined): string {
  const s = printable(String(v), 200);
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** A logger that drops everything (library use, tests). */
export const nullLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => nullLogger,
};
