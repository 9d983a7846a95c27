/**
 * Per-device back-off: a device that stops answering must not slow the others on its bus. After a failure (timeout,
 * lost connection, malformed answer) the unit waits base * factor^(failures-1) ms (capped); requests in that window
 * are refused without touching the wire; when it is over exactly one request goes out as the probe, and a success
 * resets everything. A Modbus exception answer is not a failure: the device is alive and said no.
 * All timestamps come from the injected clock, so a test (or a simulated day) decides when time passes.
 */
import type { HardwareClock } from '../clock.js';
import type { DeviceHealth } from './types.js';

/** How the wait grows with consecutive failures. */
export interface BackoffOptions {
  /** Wait after the first failure, ms. Default 1000. */
  readonly baseMs: number;
  /** Growth per further failure. Default 2. */
  readonly factor: number;
  /** Longest wait, ms. Default 60000. */
  readonly maxMs: number;
}

/** 1 s, 2 s, 4 s ... up to a minute. */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, factor: 2, maxMs: 60_000 };

/** The wait after `failures` consecutive failures (>= 1): base * factor^(failures-1), capped at maxMs. */
export function backoffDelayMs(options: BackoffOptions, failures: number): number {
  if (failures <= 0) return 0;
  const raw = options.baseMs * options.factor ** (failures - 1);
  return Number.isFinite(raw) ? Math.min(raw, options.maxMs) : options.maxMs;
}

/** Checks options given by a person; throws with the offending field and what is allowed. */
export function checkBackoffOptions(options: BackoffOptions): BackoffOptions {
  const { baseMs, factor, maxMs } = options;
  if (!(Number.isFinite(baseMs) && baseMs >= 0)) throw new RangeError(`backoff.baseMs must be >= 0 ms, got ${baseMs}`);
  if (!(Number.isFinite(factor) && factor >= 1)) throw new RangeError(`backoff.factor must be >= 1, got ${factor}`);
  if (!(Number.isFinite(maxMs) && maxMs >= baseMs)) {
    throw new RangeError(`backoff.maxMs must be >= backoff.baseMs (${baseMs} ms), got ${maxMs}`);
  }
  return options;
}

/** What to do with a request for a unit now. */
export type Admission =
  | { readonly send: true; readonly probe: boolean }
  | {
      readonly send: false;
      readonly until: number;
      readonly failures: number;
      readonly lastError?: string;
    };

interface UnitState {
  failures: number;
  backoffUntil?: number;
  lastGood?: number;
  lastError?: string;
}

/** The back-off and health bookkeeping of the units on one bus. */
export class UnitBackoff {
  private readonly units = new Map<number, UnitState>();

  constructor(
    private readonly options: BackoffOptions,
    private readonly clock: HardwareClock,
  ) {
    checkBackoffOptions(options);
  }

  /**
   * Decides whether a request for `unit` may go out now. In back-off: no. Failures recorded but the wait is over:
   * yes, as the probe (the caller sends it once, without retries, and reports the outcome before the next request).
   */
  admit(unit: number): Admission {
    const state = this.units.get(unit);
    if (!state || state.failures === 0) return { send: true, probe: false };
    const now = this.clock.now();
    if (state.backoffUntil !== undefined && now < state.backoffUntil) {
      return {
        send: false,
        until: state.backoffUntil,
        failures: state.failures,
        ...(state.lastError === undefined ? {} : { lastError: state.lastError }),
      };
    }
    return { send: true, probe: true };
  }

  /** The unit answered normally. Returns true when this ended a run of failures (the device is back). */
  success(unit: number): boolean {
    const state = this.state(unit);
    const recovered = state.failures > 0;
    state.failures = 0;
    state.backoffUntil = undefined;
    state.lastGood = this.clock.now();
    return recovered;
  }

  /** The unit answered with a Modbus exception: alive (resets back-off), but keep the message. */
  alive(unit: number, message: string): boolean {
    const recovered = this.success(unit);
    this.state(unit).lastError = message;
    return recovered;
  }

  /** The request failed (timeout, connection, malformed answer). Returns when the next probe may go out. */
  failure(unit: number, message: string): number {
    const state = this.state(unit);
    state.failures += 1;
    state.lastError = message;
    state.backoffUntil = this.clock.now() + backoffDelayMs(this.options, state.failures);
    return state.backoffUntil;
  }

  /**
   * online: last request succeeded; offline: in back-off; degraded: failures recorded, wait over, probe not yet done;
   * unknown: never asked.
   */
  health(unit: number): DeviceHealth {
    const state = this.units.get(unit);
    if (!state) return { state: 'unknown', consecutiveFailures: 0 };
    const common = {
      consecutiveFailures: state.failures,
      ...(state.lastGood === undefined ? {} : { lastGood: state.lastGood }),
      ...(state.lastError === undefined ? {} : { lastError: state.lastError }),
    };
    if (state.failures === 0) return { state: 'online', ...common };
    const until = state.backoffUntil ?? 0;
    if (this.clock.now() < until) return { state: 'offline', backoffUntil: until, ...common };
    return { state: 'degraded', ...common };
  }

  private state(unit: number): UnitState {
    let state = this.units.get(unit);
    if (!state) {
      state = { failures: 0 };
      this.units.set(unit, state);
    }
    return state;
  }
}
