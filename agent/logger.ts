/**
 * Logging: pino JSON lines to stdout (or a given stream), one child logger per module (`module` field). Code takes
 * a Logger from its context; nothing logs through a global.
 */
import { pino } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface Logger {
  trace(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  fatal(obj: object | string, msg?: string): void;
  child(bindings: { module: string } & Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  /** A writable with write(string); stdout by default. */
  readonly destination?: { write(line: string): unknown };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ fd: 1, sync: true });
  return pino({ level: options.level ?? 'info', base: undefined }, destination) as unknown as Logger;
}

/** A logger that drops everything, for tools whose output is the command's own stdout. */
export function silentLogger(): Logger {
  return createLogger({ level: 'silent' });
}
