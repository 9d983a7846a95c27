import { describe, expect, it } from 'vitest';
import { BuildingLoad, type LoadParams, profileLevel, weekdayOf } from '../../../../sim/physics/load.js';
import { DAY, environment, HOUR, MONDAY, run } from './helpers.js';

function load(params: Partial<LoadParams> = {}, seed = 3) {
  return new BuildingLoad('load', { profile: 'office', peakW: 10_000, ...params }, { ...environment(), seed });
}

describe('building load', () => {
  it('knows the day of the week', () => {
    expect(weekdayOf(Math.floor(MONDAY / DAY))).toBe(1);
    expect(weekdayOf(Math.floor((MONDAY + 6 * DAY) / DAY))).toBe(0);
  });

  it('follows its daily shape: an office works on weekdays and rests on Sundays', () => {
    const noon = (day: number) => profileLevel('office', MONDAY + day * DAY + 12 * HOUR, 0);
    const night = profileLevel('office', MONDAY + 3 * HOUR, 0);
    expect(noon(0)).toBeGreaterThan(0.9);
    expect(noon(6)).toBeLessThan(0.3);
    expect(night).toBeLessThan(0.3);
    expect(profileLevel('residential', MONDAY + 19 * HOUR, 0)).toBeGreaterThan(
      profileLevel('residential', MONDAY + 12 * HOUR, 0),
    );
  });

  it('is continuous at midnight between a weekday and a weekend shape', () => {
    const friday = MONDAY + 4 * DAY;
    const before = profileLevel('commercial', friday + DAY - 1, 0);
    const after = profileLevel('commercial', friday + DAY, 0);
    expect(Math.abs(after - before)).toBeLessThan(1e-6);
  });

  it('reads the shape in local time', () => {
    const t = MONDAY + 12 * HOUR;
    expect(profileLevel('office', t, 120)).toBeCloseTo(profileLevel('office', t + 2 * HOUR, 0), 12);
  });

  it('adds seeded noise: the same seed repeats, another seed differs, the mean stays on the shape', () => {
    const day = (seed: number) => {
      const l = load({}, seed);
      const ws: number[] = [];
      run(l, MONDAY + DAY, 60_000, () => ws.push(l.snapshot().powerW));
      return { ws, energy: l.snapshot().energyWh };
    };
    const a = day(1);
    expect(day(1).ws).toEqual(a.ws);
    expect(day(2).ws).not.toEqual(a.ws);
    let shapeWh = 0;
    for (let t = MONDAY; t < MONDAY + DAY; t += 60_000) shapeWh += (10_000 * profileLevel('office', t, 0)) / 60;
    expect(Math.abs(a.energy - shapeWh) / shapeWh).toBeLessThan(0.1);
  });

  it('sheds its curtailable share on request and resumes after the timeout', () => {
    const l = load({ curtailableShare: 0.3, noisePct: 0 });
    l.step(MONDAY + 12 * HOUR);
    const full = l.snapshot().powerW;
    l.setCurtailment({ pct: 50, revertTimeoutS: 900 });
    l.step(MONDAY + 12 * HOUR + 60_000);
    const cut = l.snapshot();
    expect(cut.powerW / cut.uncurtailedPowerW).toBeCloseTo(0.85, 9);
    expect(cut.curtailedPowerW).toBeCloseTo(cut.uncurtailedPowerW * 0.15, 9);
    l.step(MONDAY + 12 * HOUR + 900_000);
    const back = l.snapshot();
    expect(back.curtailment?.active).toBe(false);
    expect(back.powerW).toBe(back.uncurtailedPowerW);
    expect(full).toBeGreaterThan(9000);
  });

  it('has reactive power and phase currents from its power factor', () => {
    const l = load({ powerFactor: 0.8, phases: 1, phase: 2 });
    l.step(MONDAY + 12 * HOUR);
    const s = l.snapshot();
    expect(s.reactivePowerVar).toBeCloseTo(s.powerW * 0.75, 6);
    expect(s.phaseCurrentA[0]).toBe(0);
    expect(s.phaseCurrentA[1]).toBeCloseTo(Math.hypot(s.powerW, s.reactivePowerVar) / s.phaseVoltageV[1], 9);
    expect(s.phasePowerW[1]).toBe(s.powerW);
  });

  it('gives the same day energy at 1 s and 60 s steps', () => {
    const day = (stepMs: number) => {
      const l = load({ curtailableShare: 0.5 });
      run(l, MONDAY + 10 * HOUR, stepMs);
      l.setCurtailment({ pct: 100, revertTimeoutS: 3333 });
      run(l, MONDAY + DAY, stepMs);
      return l.snapshot().energyWh;
    };
    const a = day(1000);
    expect(Math.abs(day(60_000) - a) / a).toBeLessThan(1e-5);
  });

  it('rejects an unknown profile', () => {
    expect(() => load({ profile: 'factory' as 'office' })).toThrow(/profile/);
  });
});
