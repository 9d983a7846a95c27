/**
 * Accelerated time for the demo: a simulated day in about two minutes. The simulated sites and the agents must agree
 * on "now", so both derive it from one wall clock that stands still until start(): every site created before then
 * starts its simulated day at the same instant as the agents.
 *
 * Timers are divided by the speed, but a timer of a few seconds is not shortened below min(ms, 250) wall ms: short
 * delays are about machines answering (a broker round trip, a Modbus reply, a bargaining phase), and those do not get
 * faster because the simulated sun moves faster. Long delays (the next poll, the next market interval) are what the
 * acceleration is for.
 */
import type { Clock, TimerHandle } from '../clock.js';

/** Shortest wall-clock delay of a timer, ms (or its own length when shorter). */
const FLOOR_MS = 250;

export class DemoTime {
  /** The wall clock the simulated sites take: it stands still until start(). */
  readonly wall: Clock;
  /** The agents' clock: simulated time, `speed` times faster than the wall. */
  readonly clock: Clock;
  private anchor: number | undefined;
  private readonly frozenAt = Date.now();

  constructor(
    readonly startMs: number,
    readonly speed: number,
  ) {
    if (!(Number.isFinite(speed) && speed > 0)) throw new RangeError(`speed must be a number > 0, got ${speed}`);
    const wallNow = () => (this.anchor === undefined ? this.frozenAt : this.frozenAt + (Date.now() - this.anchor));
    this.wall = {
      now: wallNow,
      setTimeout: (callback, ms) => wallTimer(setTimeout, clearTimeout, callback, ms),
      setInterval: (callback, ms) => wallTimer(setInterval, clearInterval, callback, ms),
    };
    const scaled = (ms: number) => Math.max(ms / speed, Math.min(ms, FLOOR_MS));
    this.clock = {
      now: () => Math.floor(startMs + (wallNow() - this.frozenAt) * speed),
      setTimeout: (callback, ms) => wallTimer(setTimeout, clearTimeout, callback, scaled(Math.max(0, ms))),
      setInterval: (callback, ms) => wallTimer(setInterval, clearInterval, callback, scaled(ms)),
    };
  }

  /** Lets time run (once). */
  start(): void {
    this.anchor ??= Date.now();
  }

  /** Wall-clock ms until the simulated clock reaches `t` (0 when it has). */
  wallMsUntil(t: number): number {
    return Math.max(0, (t - this.clock.now()) / this.speed);
  }
}

function wallTimer<T>(
  set: (callback: () => void, ms: number) => T,
  clear: (handle: T) => void,
  callback: () => void,
  ms: number,
): TimerHandle {
  const handle = set(callback, ms);
  return { cancel: () => clear(handle) };
}
