/**
 * The PV forecast: clear-sky output scaled by what the plant delivered in the last hours, relaxing to a default.
 */
import { describe, expect, it } from 'vitest';
import { forecastPv, type PowerSample } from '../../../../agent/optimizer/forecast/pv.js';
import {
  clearSkyPvW,
  type GeoLocation,
  meanOverInterval,
  type PvPlantSpec,
} from '../../../../agent/optimizer/forecast/solar.js';
import type { Horizon } from '../../../../agent/optimizer/model.js';

const MUNICH: GeoLocation = { latitudeDeg: 48.14, longitudeDeg: 11.58 };
const PLANT: PvPlantSpec = { peakWp: 10_000, acRatingW: 8_000, tiltDeg: 30, azimuthDeg: 180, performanceRatio: 0.85 };
const MIN = 60_000;
const HOUR = 3_600_000;
const STEP = 15 * MIN;
const DAY = Date.UTC(2026, 4, 12);

const clear = (t: number) => clearSkyPvW(PLANT, MUNICH, t);
const clearMean = (start: number, span = STEP) => meanOverInterval(clear, start, span, 60);

/** Interval means of `factor` × clear sky over [now - hours, now), the running interval cut at now. */
function history(now: number, hours: number, factor: (t: number) => number): PowerSample[] {
  const out: PowerSample[] = [];
  for (let t = Math.floor((now - hours * HOUR) / STEP) * STEP; t < now; t += STEP) {
    out.push({ t, w: factor(t) * clearMean(t, Math.min(STEP, now - t)) });
  }
  return out;
}

const horizonAt = (now: number, steps = 96): Horizon => ({ start: Math.floor(now / STEP) * STEP, stepMs: STEP, steps });

/** Forecast / clear-sky mean per interval (undefined at night). */
function ratios(h: Horizon, forecastW: readonly number[]): (number | undefined)[] {
  return forecastW.map((w, i) => {
    // The forecast's own 15-point mean, so the ratio is exactly the scale it applied.
    const cs = meanOverInterval(clear, h.start + i * STEP, STEP, 15);
    return cs > 50 ? w / cs : undefined;
  });
}

describe('forecastPv', () => {
  it('follows the clear sky after a clear morning', () => {
    const now = DAY + 9 * HOUR + 5 * MIN;
    const h = horizonAt(now);
    const f = forecastPv({
      horizon: h,
      plant: PLANT,
      location: MUNICH,
      recent: history(now, 3, () => 1),
      now,
      options: { sampleSpanMs: STEP },
    });
    expect(f.scale).toBeCloseTo(1, 2);
    const r = ratios(h, f.forecastW);
    // Next hour: 0.75 + 0.25·e^(-lead/3h), lead <= 52.5 min: a clear sky is expected to stay mostly clear.
    for (let i = 0; i < 4; i++) {
      expect(r[i]).toBeGreaterThan(0.93);
      expect(r[i]).toBeLessThan(1);
    }
    expect(f.basis).toMatch(/clear-sky output × 1\.00 measured over \d+ daylight sample/);
  });

  it('stays near 50 % for the next hour after a 50 % cloudy morning and returns towards the default later', () => {
    const now = DAY + 10 * HOUR;
    const h = horizonAt(now);
    const f = forecastPv({
      horizon: h,
      plant: PLANT,
      location: MUNICH,
      recent: history(now, 3, () => 0.5),
      now,
      options: { sampleSpanMs: STEP, defaultScale: 0.75 },
    });
    expect(f.scale).toBeCloseTo(0.5, 3);
    const r = ratios(h, f.forecastW);
    // Next hour: 0.5 + 0.25·(1 - e^(-lead/3h)), lead <= 52.5 min: between 0.5 and 0.57.
    for (let i = 0; i < 4; i++) {
      expect(r[i]).toBeGreaterThan(0.5);
      expect(r[i]).toBeLessThan(0.57);
    }
    // Later the same afternoon (6 h ahead): most of the way back to the default.
    expect(r[24]).toBeGreaterThan(0.7);
    expect(r[24]).toBeLessThan(0.75);
    // Rising with the lead time all day long.
    const day = r.filter((x): x is number => x !== undefined);
    for (let i = 1; i < day.length; i++) expect(day[i]).toBeGreaterThan(day[i - 1] as number);
  });

  it('learns from raw 5-s samples as well as from interval means, and gaps do not bias it', () => {
    const now = DAY + 12 * HOUR;
    const recent: PowerSample[] = [];
    for (let t = now - 3 * HOUR; t < now; t += 5000) {
      // An hour-long hole in the data (a gateway restart): the ratio is over the samples that exist.
      if (t >= now - 2 * HOUR && t < now - HOUR) continue;
      recent.push({ t, w: 0.6 * clear(t) });
    }
    const f = forecastPv({ horizon: horizonAt(now), plant: PLANT, location: MUNICH, recent, now });
    expect(f.scale).toBeCloseTo(0.6, 3);
  });

  it('uses the default with no daylight measurements, and says so', () => {
    const now = DAY + 2 * HOUR; // night in Munich
    const h = horizonAt(now);
    const f = forecastPv({
      horizon: h,
      plant: PLANT,
      location: MUNICH,
      recent: history(now, 3, () => 0),
      now,
      options: { sampleSpanMs: STEP, defaultScale: 0.7 },
    });
    expect(f.scale).toBe(0.7);
    expect(f.basis).toContain('no daylight measurements');
    for (const x of ratios(h, f.forecastW)) if (x !== undefined) expect(x).toBeCloseTo(0.7, 9);
    // Nothing at night.
    expect(f.forecastW[0]).toBe(0);
    expect(forecastPv({ horizon: h, plant: PLANT, location: MUNICH, recent: [], now }).scale).toBe(0.75);
  });

  it('bounds the learned scale', () => {
    const now = DAY + 11 * HOUR;
    const f = forecastPv({
      horizon: horizonAt(now, 4),
      plant: PLANT,
      location: MUNICH,
      recent: history(now, 3, () => 2.5),
      now,
      options: { sampleSpanMs: STEP },
    });
    expect(f.scale).toBe(1.2);
    expect(f.basis).toContain('bounded from 2.50');
    // Around noon the clear sky already reaches the AC rating: more light does not make more AC power.
    expect(Math.max(...f.forecastW)).toBe(PLANT.acRatingW);
  });

  it('ignores samples of a low sun and samples outside the look-back window', () => {
    const now = DAY + 11 * HOUR;
    const recent = [
      ...history(now, 2, () => 0.5),
      // Yesterday, and at dawn, at full power: neither counts.
      ...history(now - 20 * HOUR, 2, () => 1),
      { t: DAY + 3 * HOUR, w: 5_000 },
    ];
    const f = forecastPv({
      horizon: horizonAt(now, 4),
      plant: PLANT,
      location: MUNICH,
      recent,
      now,
      options: { sampleSpanMs: STEP },
    });
    expect(f.scale).toBeCloseTo(0.5, 3);
  });

  it('refuses nonsense options with a message', () => {
    const now = DAY + 11 * HOUR;
    expect(() =>
      forecastPv({
        horizon: horizonAt(now),
        plant: PLANT,
        location: MUNICH,
        recent: [],
        now,
        options: { persistenceTauMs: 0 },
      }),
    ).toThrow(/persistenceTauMs must be > 0/);
  });
});
