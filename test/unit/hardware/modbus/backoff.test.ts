import { describe, expect, it } from 'vitest';
import type { HardwareClock } from '../../../../hardware/clock.js';
import {
  backoffDelayMs,
  checkBackoffOptions,
  DEFAULT_BACKOFF,
  UnitBackoff,
} from '../../../../hardware/modbus/backoff.js';

/** A clock that only moves when told to. */
function fakeClock(start = Date.UTC(2030, 0, 1)): HardwareClock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    advance(ms) {
      now += ms;
    },
    setTimeout: () => ({ cancel() {} }),
    setInterval: () => ({ cancel() {} }),
  };
}

describe('backoffDelayMs', () => {
  it('grows by the factor from the base and stops at the cap', () => {
    const o = { baseMs: 1000, factor: 2, maxMs: 60_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelayMs(o, n))).toEqual([
      0, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000,
    ]);
    expect(backoffDelayMs(o, 5000)).toBe(60_000); // no overflow to Infinity/NaN
    expect(backoffDelayMs({ baseMs: 500, factor: 1, maxMs: 500 }, 10)).toBe(500);
    expect(backoffDelayMs({ baseMs: 100, factor: 3, maxMs: 1e9 }, 3)).toBe(900);
  });

  it('refuses options that make no sense, naming the field', () => {
    expect(checkBackoffOptions(DEFAULT_BACKOFF)).toBe(DEFAULT_BACKOFF);
    expect(() => checkBackoffOptions({ baseMs: -1, factor: 2, maxMs: 10 })).toThrow(/baseMs/);
    expect(() => checkBackoffOptions({ baseMs: 1, factor: 0.5, maxMs: 10 })).toThrow(/factor/);
    expect(() => checkBackoffOptions({ baseMs: 100, factor: 2, maxMs: 10 })).toThrow(/maxMs/);
  });
});

describe('UnitBackoff', () => {
  it('refuses during the wait, lets exactly one probe out after it, and resets on success', () => {
    const clock = fakeClock();
    const t0 = clock.now();
    const b = new UnitBackoff({ baseMs: 1000, factor: 2, maxMs: 5000 }, clock);
    expect(b.health(3)).toEqual({ state: 'unknown', consecutiveFailures: 0 });
    expect(b.admit(3)).toEqual({ send: true, probe: false });

    b.success(3);
    expect(b.health(3)).toMatchObject({ state: 'online', lastGood: t0, consecutiveFailures: 0 });

    clock.advance(10);
    expect(b.failure(3, 'timeout')).toBe(t0 + 10 + 1000);
    expect(b.health(3)).toMatchObject({ state: 'offline', consecutiveFailures: 1, backoffUntil: t0 + 1010 });
    expect(b.admit(3)).toMatchObject({ send: false, until: t0 + 1010, failures: 1, lastError: 'timeout' });
    // other units are not affected
    expect(b.admit(4)).toEqual({ send: true, probe: false });

    clock.advance(999);
    expect(b.admit(3).send).toBe(false);
    clock.advance(1);
    expect(b.health(3).state).toBe('degraded');
    expect(b.admit(3)).toEqual({ send: true, probe: true });

    // the probe fails: the wait doubles
    expect(b.failure(3, 'timeout again')).toBe(clock.now() + 2000);
    expect(b.health(3)).toMatchObject({ state: 'offline', consecutiveFailures: 2, lastError: 'timeout again' });
    clock.advance(2000);
    expect(b.admit(3)).toEqual({ send: true, probe: true });
    b.failure(3, 'x');
    clock.advance(4000);
    b.failure(3, 'x');
    expect(b.health(3).backoffUntil).toBe(clock.now() + 5000); // capped
    clock.advance(5000);

    // the probe succeeds: back to normal
    expect(b.success(3)).toBe(true);
    expect(b.health(3)).toMatchObject({ state: 'online', consecutiveFailures: 0, lastGood: clock.now() });
    expect(b.health(3).backoffUntil).toBeUndefined();
    expect(b.admit(3)).toEqual({ send: true, probe: false });
    expect(b.success(3)).toBe(false);
  });

  it('counts an exception answer as alive, not as a failure', () => {
    const clock = fakeClock();
    const b = new UnitBackoff(DEFAULT_BACKOFF, clock);
    b.failure(1, 'timeout');
    clock.advance(1000);
    expect(b.alive(1, 'exception 2 (illegal data address)')).toBe(true);
    expect(b.health(1)).toMatchObject({
      state: 'online',
      consecutiveFailures: 0,
      lastError: 'exception 2 (illegal data address)',
    });
    expect(b.admit(1)).toEqual({ send: true, probe: false });
  });
});
