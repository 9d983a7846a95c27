/**
 * The time source hardware/ and sim/ need. Structurally the same as agent/clock.ts (which hardware/ may not import),
 * so the agent passes its injected clock straight in and a simulated day runs in seconds.
 */

export interface TimerHandle {
  cancel(): void;
}

export interface HardwareClock {
  /** ms since the Unix epoch, UTC. */
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  setInterval(callback: () => void, ms: number): TimerHandle;
}

/** The wall clock, for the CLI and for code that talks to real devices. */
export function wallClock(): HardwareClock {
  return {
    now: () => Date.now(),
    setTimeout(callback, ms) {
      const t = setTimeout(callback, ms);
      return { cancel: () => clearTimeout(t) };
    },
    setInterval(callback, ms) {
      const t = setInterval(callback, ms);
      return { cancel: () => clearInterval(t) };
    },
  };
}

/** A minimal structured logger; pino loggers fit it. */
export interface HardwareLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: HardwareLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
