/**
 * Time for the whole agent. Every timer and every "now" goes through a Clock so that the simulator and the tests
 * can run a day in seconds (ManualClock) while the gateway uses the system clock.
 */

import { type HardwareClock, type TimerHandle, wallClock } from '../hardware/clock.js';

export type { TimerHandle };

/** The same shape hardware/ and sim/ take, so the agent hands its clock straight to them. */
export type Clock = HardwareClock;

export function systemClock(): Clock {
  return wallClock();
}

interface PendingTimer {
  due: number;
  readonly every: number | undefined;
  readonly callback: () => void;
  readonly id: number;
  cancelled: boolean;
}

/** A clock that moves only when told to; due timers fire in time order during advance(). */
export class ManualClock implements Clock {
  private current: number;
  private timers: PendingTimer[] = [];
  private nextId = 0;

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms, undefined);
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    if (!(ms > 0)) throw new RangeError(`interval must be > 0 ms, got ${ms}`);
    return this.add(callback, ms, ms);
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way, each at its own due time. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      const next = this.timers
        .filter((t) => !t.cancelled && t.due <= target)
        .sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (next === undefined) break;
      this.current = Math.max(this.current, next.due);
      if (next.every === undefined) next.cancelled = true;
      else next.due += next.every;
      next.callback();
    }
    this.timers = this.timers.filter((t) => !t.cancelled);
    this.current = target;
  }

  private add(callback: () => void, ms: number, every: number | undefined): TimerHandle {
    const timer: PendingTimer = {
      due: this.current + Math.max(0, ms),
      every,
      callback,
      id: this.nextId++,
      cancelled: false,
    };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }
}
