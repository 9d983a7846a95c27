import { describe, expect, it } from 'vitest';
import { EvCharger, type EvChargerParams, IEC61851_MIN_CURRENT_A } from '../../../../sim/physics/ev.js';
import { DAY, environment, HOUR, MONDAY, run } from './helpers.js';

const iso = (t: number) => new Date(t).toISOString();

function charger(params: Partial<EvChargerParams> = {}, seed = 3) {
  return new EvCharger('ev', { maxCurrentA: 16, phases: 3, ...params }, { ...environment(), seed });
}

const oneCar = (energyWh: number, fromH = 8, toH = 17) => ({
  sessions: [{ arrival: iso(MONDAY + fromH * HOUR), departure: iso(MONDAY + toH * HOUR), energyWh }],
});

describe('EV charger', () => {
  it('goes A -> C -> B (full) -> A and delivers exactly the energy asked for', () => {
    const ev = charger(oneCar(10_000));
    expect(ev.snapshot().status).toBe('A');
    ev.step(MONDAY + 8 * HOUR + 60_000);
    let s = ev.snapshot();
    expect(s.status).toBe('C');
    expect(s.currentA).toBe(16);
    expect(s.powerW).toBeGreaterThan(10_500);
    expect(s.powerW).toBeLessThan(11_600);
    run(ev, MONDAY + 10 * HOUR, 1000);
    s = ev.snapshot();
    expect(s.status).toBe('B');
    expect(s.pausedBy).toBe('full');
    expect(s.powerW).toBe(0);
    expect(s.sessionEnergyWh).toBeCloseTo(10_000, 9);
    // 10 kWh at about 11 kW takes about 54 min.
    const minutes = (s.session!.completedAt! - (MONDAY + 8 * HOUR)) / 60_000;
    expect(minutes).toBeGreaterThan(50);
    expect(minutes).toBeLessThan(58);
    run(ev, MONDAY + 18 * HOUR, 60_000);
    s = ev.snapshot();
    expect(s.status).toBe('A');
    expect(s.sessionEnergyWh).toBeCloseTo(10_000, 9);
    expect(s.lifetimeEnergyWh).toBeCloseTo(10_000, 9);
    expect(s.sessionCount).toBe(1);
  });

  it('lets a car leave before it is full', () => {
    const ev = charger(oneCar(100_000, 8, 10));
    run(ev, MONDAY + 12 * HOUR, 60_000);
    const s = ev.snapshot();
    expect(s.status).toBe('A');
    expect(s.sessionEnergyWh).toBeGreaterThan(20_000);
    expect(s.sessionEnergyWh).toBeLessThan(23_500);
  });

  it('never offers less than 6 A: a lower limit pauses charging, 0 pauses, 6 A and up charge', () => {
    expect(IEC61851_MIN_CURRENT_A).toBe(6);
    const ev = charger(oneCar(50_000));
    ev.step(MONDAY + 9 * HOUR);
    const at = (limit: { currentA?: number; powerW?: number }) => {
      ev.setLimit(limit);
      ev.step(ev.time + 1000);
      return ev.snapshot();
    };
    let s = at({ currentA: 5.9 });
    expect(s.status).toBe('B');
    expect(s.pausedBy).toBe('limit');
    expect(s.powerW).toBe(0);
    expect(s.offeredCurrentA).toBe(0);
    s = at({ currentA: 0 });
    expect(s.status).toBe('B');
    s = at({ currentA: 6 });
    expect(s.status).toBe('C');
    expect(s.currentA).toBe(6);
    expect(s.phaseCurrentA).toEqual([6, 6, 6]);
    s = at({ currentA: 32 });
    expect(s.currentA).toBe(16);
    // 5 kW on three phases at 230 V nominal: 7.25 A.
    s = at({ powerW: 5000 });
    expect(s.currentA).toBeCloseTo(5000 / 690, 9);
    s = at({ powerW: 4000 });
    expect(s.status).toBe('B');
    expect(() => ev.setLimit({ currentA: 6, powerW: 4000 })).toThrow(/exactly one/);
  });

  it('falls back to its failsafe current when the limit is not re-sent', () => {
    const ev = charger({ ...oneCar(50_000), fallbackCurrentA: 8 });
    ev.step(MONDAY + 9 * HOUR);
    ev.setLimit({ currentA: 12, revertTimeoutS: 60 });
    ev.step(MONDAY + 9 * HOUR + 59_000);
    expect(ev.snapshot().currentA).toBe(12);
    ev.step(MONDAY + 9 * HOUR + 60_000);
    const s = ev.snapshot();
    expect(s.currentA).toBe(8);
    expect(s.limit?.active).toBe(false);
  });

  it('charges a single-phase car on one phase within the car limit', () => {
    const ev = charger({
      sessions: [
        {
          arrival: iso(MONDAY + 8 * HOUR),
          departure: iso(MONDAY + 9 * HOUR),
          energyWh: 5000,
          phases: 1,
          maxCurrentA: 10,
        },
      ],
      phase: 2,
    });
    ev.step(MONDAY + 8 * HOUR + 1000);
    const s = ev.snapshot();
    expect(s.phaseCurrentA).toEqual([0, 10, 0]);
    expect(s.phasePowerW[0]).toBe(0);
    expect(s.powerW).toBeCloseTo(10 * s.phaseVoltageV[1], 9);
  });

  it('generates daily visits from a seed, on the days asked for', () => {
    const week = (seed: number) => {
      const ev = charger(
        { daily: [{ arrival: '08:00', departure: '17:00', energyWh: 15_000, days: 'weekdays' }] },
        seed,
      );
      const arrivals: number[] = [];
      let count = 0;
      run(ev, MONDAY + 7 * DAY, 60_000, () => {
        const s = ev.snapshot();
        if (s.sessionCount > count) {
          count = s.sessionCount;
          arrivals.push(s.session!.arrival);
        }
      });
      return { arrivals, energy: ev.snapshot().lifetimeEnergyWh };
    };
    const a = week(1);
    expect(a.arrivals).toHaveLength(5);
    for (const [i, t] of a.arrivals.entries()) {
      expect(Math.abs(t - (MONDAY + i * DAY + 8 * HOUR))).toBeLessThanOrEqual(20 * 60_000);
    }
    expect(a.energy).toBeGreaterThan(5 * 15_000 * 0.8 - 1);
    expect(a.energy).toBeLessThan(5 * 15_000 * 1.2 + 1);
    expect(week(1)).toEqual(a);
    expect(week(2).arrivals).not.toEqual(a.arrivals);
  });

  it('has a car that came the evening before at the start', () => {
    const ev = charger({ daily: [{ arrival: '18:00', departure: '07:00', energyWh: 30_000, jitterMin: 0 }] });
    expect(ev.snapshot().status).toBe('C');
    run(ev, MONDAY + 8 * HOUR, 60_000);
    expect(ev.snapshot().status).toBe('A');
  });

  it('gives the same energy at 1 s and 60 s steps, with a limit that expires mid-step', () => {
    const day = (stepMs: number) => {
      const ev = charger({ daily: [{ arrival: '07:00', departure: '19:00', energyWh: 40_000 }] });
      run(ev, MONDAY + 9 * HOUR, stepMs);
      ev.setLimit({ currentA: 7, revertTimeoutS: 3_333 });
      run(ev, MONDAY + DAY, stepMs);
      return ev.snapshot().lifetimeEnergyWh;
    };
    const a = day(1000);
    expect(Math.abs(day(60_000) - a) / a).toBeLessThan(1e-5);
  });

  it('rejects overlapping sessions and times without an offset', () => {
    expect(() =>
      charger({
        sessions: [
          { arrival: iso(MONDAY), departure: iso(MONDAY + 2 * HOUR), energyWh: 1 },
          { arrival: iso(MONDAY + HOUR), departure: iso(MONDAY + 3 * HOUR), energyWh: 1 },
        ],
      }),
    ).toThrow(/overlap/);
    expect(() =>
      charger({ sessions: [{ arrival: '2024-06-17T08:00', departure: '2024-06-17T09:00Z', energyWh: 1 }] }),
    ).toThrow(/offset/);
    expect(() => charger({ daily: [{ arrival: '8:00', departure: '17:00', energyWh: 1 }] })).toThrow(/HH:MM/);
  });
});
