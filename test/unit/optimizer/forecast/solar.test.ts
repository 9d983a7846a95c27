/**
 * The sun model of the PV forecast: noon elevations and sunrise/sunset against published values, night, symmetry
 * about solar noon, interval means, and the simulator's clear-sky PV output (what the agent is tested against).
 */
import { describe, expect, it } from 'vitest';
import {
  clearSkyIrradiance,
  clearSkyPvW,
  type GeoLocation,
  meanOverInterval,
  type PvPlantSpec,
  planeOfArrayIrradiance,
  solarNoon,
  sunPosition,
  sunTimes,
} from '../../../../agent/optimizer/forecast/solar.js';
import { planeOfArray, SolarResource } from '../../../../sim/physics/solar.js';

const MUNICH: GeoLocation = { latitudeDeg: 48.14, longitudeDeg: 11.58 };
const LONDON: GeoLocation = { latitudeDeg: 51.5074, longitudeDeg: -0.1278 };
const SYDNEY: GeoLocation = { latitudeDeg: -33.8688, longitudeDeg: 151.2093 };
const MIN = 60_000;
const HOUR = 3_600_000;

/** Local clock time "HH:MM" at a fixed UTC offset → UTC ms on the given date. */
const at = (y: number, m: number, d: number, hhmm: string, offsetH: number) => {
  const [h, mi] = hhmm.split(':').map(Number) as [number, number];
  return Date.UTC(y, m - 1, d, h, mi) - offsetH * HOUR;
};

describe('sun position', () => {
  it('has the noon elevation 90 - latitude + declination (Munich, solstices)', () => {
    const june = solarNoon(Date.UTC(2026, 5, 21), MUNICH.longitudeDeg);
    const december = solarNoon(Date.UTC(2026, 11, 21), MUNICH.longitudeDeg);
    expect(sunPosition(june, MUNICH).elevationDeg).toBeCloseTo(65.3, 1);
    expect(sunPosition(december, MUNICH).elevationDeg).toBeCloseTo(18.4, 1);
    // At solar noon the sun is due south in the north, due north in the south.
    expect(sunPosition(june, MUNICH).azimuthDeg).toBeCloseTo(180, 0);
    const sydneyNoon = solarNoon(Date.UTC(2026, 11, 21), SYDNEY.longitudeDeg);
    const az = sunPosition(sydneyNoon, SYDNEY).azimuthDeg;
    expect(Math.min(az, 360 - az)).toBeLessThan(1);
  });

  it('puts solar noon where the longitude and the equation of time say (Munich 13:15 CEST in June)', () => {
    const noon = solarNoon(Date.UTC(2026, 5, 21), MUNICH.longitudeDeg);
    expect(Math.abs(noon - at(2026, 6, 21, '13:15', 2))).toBeLessThan(1.5 * MIN);
  });

  // Published times (timeanddate.com), local clock time: within 3 minutes.
  const cases: [string, GeoLocation, [number, number, number], string, string, number][] = [
    ['Munich June', MUNICH, [2026, 6, 21], '05:12', '21:17', 2],
    ['Munich December', MUNICH, [2026, 12, 21], '08:01', '16:22', 1],
    ['London June', LONDON, [2026, 6, 21], '04:43', '21:21', 1],
    ['London December', LONDON, [2026, 12, 21], '08:04', '15:53', 0],
    ['Sydney June', SYDNEY, [2026, 6, 21], '07:00', '16:54', 10],
    ['Sydney December', SYDNEY, [2026, 12, 21], '05:41', '20:05', 11],
  ];
  for (const [name, loc, [y, m, d], rise, set, offset] of cases) {
    it(`rises and sets within 3 minutes of the published times: ${name}`, () => {
      const times = sunTimes(Date.UTC(y, m - 1, d, 12), loc);
      expect(times.polar).toBeUndefined();
      expect(Math.abs((times.sunrise as number) - at(y, m, d, rise, offset))).toBeLessThan(3 * MIN);
      expect(Math.abs((times.sunset as number) - at(y, m, d, set, offset))).toBeLessThan(3 * MIN);
      // And the position model agrees: the sun's centre is 0.833° below the horizon at those instants.
      expect(sunPosition(times.sunrise as number, loc).elevationDeg).toBeCloseTo(-0.833, 1);
    });
  }

  it('knows polar day and polar night (Longyearbyen)', () => {
    const svalbard = { latitudeDeg: 78.2, longitudeDeg: 15.6 };
    expect(sunTimes(Date.UTC(2026, 5, 21), svalbard).polar).toBe('day');
    expect(sunTimes(Date.UTC(2026, 11, 21), svalbard).polar).toBe('night');
  });
});

const PLANT: PvPlantSpec = { peakWp: 10_000, acRatingW: 8_000, tiltDeg: 30, azimuthDeg: 180, performanceRatio: 0.864 };

describe('clear-sky PV', () => {
  it('is zero at night and positive by day', () => {
    expect(clearSkyPvW(PLANT, MUNICH, Date.UTC(2026, 5, 21, 0))).toBe(0);
    expect(clearSkyPvW(PLANT, MUNICH, Date.UTC(2026, 11, 21, 18))).toBe(0);
    const { sunrise, sunset } = sunTimes(Date.UTC(2026, 2, 20), MUNICH);
    expect(clearSkyPvW(PLANT, MUNICH, (sunrise as number) - 10 * MIN)).toBe(0);
    expect(clearSkyPvW(PLANT, MUNICH, (sunset as number) + 10 * MIN)).toBe(0);
    expect(clearSkyPvW(PLANT, MUNICH, Date.UTC(2026, 2, 20, 11))).toBeGreaterThan(4000);
  });

  it('is symmetric about solar noon for a south-facing plant', () => {
    for (const day of [Date.UTC(2026, 2, 20), Date.UTC(2026, 5, 21), Date.UTC(2026, 11, 21)]) {
      const noon = solarNoon(day, MUNICH.longitudeDeg);
      for (const h of [1, 2.5, 4]) {
        const before = clearSkyPvW(PLANT, MUNICH, noon - h * HOUR);
        const after = clearSkyPvW(PLANT, MUNICH, noon + h * HOUR);
        // The declination moves a little in 8 hours: symmetric to under 1 % (and 1 W where the sun just rose).
        expect(Math.abs(before - after)).toBeLessThanOrEqual(0.01 * Math.max(before, after) + 1);
      }
    }
  });

  it('faces its azimuth: an east roof makes more in the morning than in the afternoon', () => {
    const east = { ...PLANT, azimuthDeg: 90 };
    const noon = solarNoon(Date.UTC(2026, 5, 21), MUNICH.longitudeDeg);
    expect(clearSkyPvW(east, MUNICH, noon - 3 * HOUR)).toBeGreaterThan(
      1.5 * clearSkyPvW(east, MUNICH, noon + 3 * HOUR),
    );
  });

  it('never exceeds the AC rating', () => {
    const big = { ...PLANT, peakWp: 20_000 };
    const noon = solarNoon(Date.UTC(2026, 5, 21), MUNICH.longitudeDeg);
    expect(clearSkyPvW(big, MUNICH, noon)).toBe(8000);
  });

  it('matches the simulator on a clear day: 15-min means within 0.5 % of the peak', () => {
    const day = Date.UTC(2026, 5, 21);
    const sky = new SolarResource(MUNICH, { cloudiness: 0 }, { seed: 1, startMs: day });
    // The simulator's inverter: Wp × POA/1000 × derate (0.9) × efficiency (0.96), capped at the AC rating.
    const simW = (t: number) =>
      Math.min(PLANT.acRatingW, ((PLANT.peakWp * planeOfArray(sky.irradiance(t), 30, 180)) / 1000) * 0.9 * 0.96);
    let energyOurs = 0;
    let energySim = 0;
    for (let start = day; start < day + 24 * HOUR; start += 15 * MIN) {
      const ours = meanOverInterval((t) => clearSkyPvW(PLANT, MUNICH, t), start, 15 * MIN, 15);
      const sim = meanOverInterval(simW, start, 15 * MIN, 900);
      expect(Math.abs(ours - sim)).toBeLessThan(0.005 * PLANT.acRatingW);
      energyOurs += ours;
      energySim += sim;
    }
    expect(energyOurs / energySim).toBeCloseTo(1, 3);
  });

  it('splits clear-sky GHI into beam and diffuse that add up, and tilts it', () => {
    const t = Date.UTC(2026, 5, 21, 11);
    const irr = clearSkyIrradiance(t, MUNICH);
    expect(irr.dni * irr.sun.cosZenith + irr.dhi).toBeCloseTo(irr.ghi, 6);
    expect(planeOfArrayIrradiance(irr, 0, 180)).toBeCloseTo(irr.ghi, 6);
    expect(irr.dhi / irr.ghi).toBeLessThan(0.3);
  });
});

describe('meanOverInterval', () => {
  it('averages over the interval instead of taking its start', () => {
    expect(meanOverInterval((t) => t, 0, 900_000, 15)).toBeCloseTo(450_000, 6);
    expect(meanOverInterval((t) => (t < 300_000 ? 0 : 3), 0, 900_000, 15)).toBeCloseTo(2, 6);
  });

  it('gives the interval of sunrise a share of energy although it starts in the dark', () => {
    const { sunrise } = sunTimes(Date.UTC(2026, 5, 21), MUNICH);
    const start = Math.floor((sunrise as number) / (15 * MIN)) * 15 * MIN + 15 * MIN;
    const fn = (t: number) => clearSkyPvW(PLANT, MUNICH, t);
    expect(fn(start - 30 * MIN)).toBe(0);
    expect(meanOverInterval(fn, start, 15 * MIN, 15)).toBeGreaterThan(0);
  });
});
