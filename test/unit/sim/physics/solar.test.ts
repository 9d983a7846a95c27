import { describe, expect, it } from 'vitest';
import { PvInverter } from '../../../../sim/physics/pv.js';
import {
  clearSkyGhi,
  dayOfYear,
  erbsDiffuseFraction,
  planeOfArray,
  SolarResource,
  solarNoonMs,
  sunPosition,
} from '../../../../sim/physics/solar.js';
import { DAY, environment, MUNICH, run } from './helpers.js';

describe('sun position', () => {
  it('puts the sun due south at solar noon, as high as 90 - latitude + declination at the June solstice', () => {
    const day = Date.UTC(2024, 5, 21);
    const noon = solarNoonMs(day, MUNICH.longitudeDeg);
    const sun = sunPosition(noon, MUNICH);
    expect(sun.elevationDeg).toBeCloseTo(90 - 48.14 + 23.44, 0);
    expect(Math.abs(sun.azimuthDeg - 180)).toBeLessThan(0.5);
    // 11.58° east puts solar noon 46.3 min before 12:00 UTC; in late June the sun runs ~1.7 min slow (equation of
    // time), which brings it back to about 44.6 min before.
    expect((Date.UTC(2024, 5, 21, 12) - noon) / 60_000).toBeGreaterThan(44);
    expect((Date.UTC(2024, 5, 21, 12) - noon) / 60_000).toBeLessThan(45.5);
  });

  it('puts the noon sun in the north in the southern hemisphere and rises in the east', () => {
    const capeTown = { latitudeDeg: -33.92, longitudeDeg: 18.42 };
    const noon = solarNoonMs(Date.UTC(2024, 5, 21), capeTown.longitudeDeg);
    const sun = sunPosition(noon, capeTown);
    expect(Math.min(sun.azimuthDeg, 360 - sun.azimuthDeg)).toBeLessThan(0.5);
    expect(sun.elevationDeg).toBeCloseTo(90 - 33.92 - 23.44, 0);
    const morning = sunPosition(noon - 4 * 3_600_000, capeTown);
    expect(morning.azimuthDeg).toBeGreaterThan(0);
    expect(morning.azimuthDeg).toBeLessThan(90);
  });

  it('is overhead at the equator at the March equinox', () => {
    const sun = sunPosition(Date.UTC(2024, 2, 20, 12, 7), { latitudeDeg: 0, longitudeDeg: 0 });
    expect(sun.elevationDeg).toBeGreaterThan(89);
  });

  it('counts days of the year from 1', () => {
    expect(dayOfYear(Date.UTC(2024, 0, 1, 23))).toBe(1);
    expect(dayOfYear(Date.UTC(2024, 11, 31))).toBe(366);
  });
});

describe('irradiance', () => {
  it('has no clear-sky irradiance with the sun down and about 1000 W/m² with it overhead', () => {
    expect(clearSkyGhi(-0.1)).toBe(0);
    expect(clearSkyGhi(0)).toBe(0);
    expect(clearSkyGhi(1)).toBeGreaterThan(1000);
    expect(clearSkyGhi(1)).toBeLessThan(1100);
  });

  it('has an Erbs diffuse fraction that is nearly continuous and falls as the sky clears', () => {
    // The published fit jumps by 0.0003 at kt = 0.22.
    expect(erbsDiffuseFraction(0.22)).toBeCloseTo(erbsDiffuseFraction(0.2200001), 3);
    expect(erbsDiffuseFraction(0.8)).toBeCloseTo(0.165, 2);
    expect(erbsDiffuseFraction(0.1)).toBeGreaterThan(erbsDiffuseFraction(0.7));
  });

  it('splits GHI so that a horizontal plane receives exactly GHI', () => {
    const sky = new SolarResource(MUNICH, { cloudiness: 0.5 }, { seed: 1, startMs: Date.UTC(2024, 5, 21) });
    for (let h = 4; h <= 19; h++) {
      const irr = sky.irradiance(Date.UTC(2024, 5, 21, h));
      expect(planeOfArray(irr, 0, 180)).toBeCloseTo(irr.ghi, 6);
    }
  });

  it('gets less sunlight under clouds, deterministically for a seed', () => {
    const day = Date.UTC(2024, 5, 21);
    const total = (cloudiness: number, seed: number) => {
      const sky = new SolarResource(MUNICH, { cloudiness }, { seed, startMs: day });
      let sum = 0;
      for (let t = day; t < day + DAY; t += 60_000) sum += sky.irradiance(t).ghi;
      return sum;
    };
    expect(total(0.8, 1)).toBeLessThan(total(0.3, 1));
    expect(total(0.3, 1)).toBeLessThan(total(0, 1));
    expect(total(0.5, 1)).toBe(total(0.5, 1));
    expect(total(0.5, 1)).not.toBe(total(0.5, 2));
  });
});

describe('PV over a day', () => {
  function dayOfPv(location: { latitudeDeg: number; longitudeDeg: number }, tiltDeg: number, azimuthDeg: number) {
    const day = Date.UTC(2024, 5, 21);
    const env = environment(day, 0, location);
    const pv = new PvInverter('pv', { dcCapacityWp: 10_000, acRatingW: 20_000, tiltDeg, azimuthDeg }, env);
    const samples: { t: number; w: number; status: string; elevation: number }[] = [];
    run(pv, day + DAY, 60_000, (t) => {
      const s = pv.snapshot();
      samples.push({ t, w: s.acPowerW, status: s.status, elevation: sunPosition(t, location).elevationDeg });
    });
    return { day, samples, pv };
  }

  for (const [label, location, azimuth] of [
    ['Munich, facing south', MUNICH, 180],
    ['Cape Town, facing north', { latitudeDeg: -33.92, longitudeDeg: 18.42 }, 0],
  ] as const) {
    it(`is off at night and peaks near solar noon (${label})`, () => {
      const { day, samples } = dayOfPv(location, 30, azimuth);
      for (const s of samples) {
        if (s.elevation < 0) {
          expect(s.w).toBe(0);
          expect(s.status).toBe('off');
        }
      }
      const peak = samples.reduce((a, b) => (b.w > a.w ? b : a));
      expect(Math.abs(peak.t - solarNoonMs(day, location.longitudeDeg)) / 60_000).toBeLessThan(10);
      expect(peak.status).toBe('mppt');
    });
  }

  it('produces a plausible clear June day for 10 kWp in Munich', () => {
    const { pv } = dayOfPv(MUNICH, 30, 180);
    const kwhPerKwp = pv.snapshot().lifetimeEnergyWh / 10_000;
    expect(kwhPerKwp).toBeGreaterThan(5);
    expect(kwhPerKwp).toBeLessThan(8);
  });
});
