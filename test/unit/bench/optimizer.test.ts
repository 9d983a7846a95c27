/**
 * The optimizer benchmark's simulated week, one scored day: the three controllers' costs come out finite and in a
 * sensible order, the batteries stay within their limits, and a seed gives the same day twice. No timings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInlineSolver, type Solver } from '../../../agent/optimizer/solver.js';
import { adjustedCost, simulateWeek, type WeekResult } from '../../../bench/optimizer.js';

describe('bench optimizer: simulated day', () => {
  let solver: Solver;
  let week: WeekResult;
  const options = { seed: 7, days: 1, warmupDays: 1, replanEvery: 4, diagnostics: false };

  beforeAll(async () => {
    solver = await createInlineSolver();
    week = await simulateWeek(options, solver);
  });
  afterAll(async () => {
    await solver.close();
  });

  it('scores one day with finite costs for the three controllers', () => {
    expect(week.days).toHaveLength(1);
    const day = week.days[0]!;
    expect(day.weekday).toBe('Tue');
    for (const c of ['optimizer', 'ruleBased', 'noBattery'] as const) expect(Number.isFinite(day.cost[c])).toBe(true);
    // Diagnostics were not asked for.
    expect(Number.isNaN(day.cost.perfectForecast)).toBe(true);
    expect(week.replans).toBe(24);
    expect(week.fallbacks).toBe(0);
    expect(day.pvKWh).toBeGreaterThan(0);
    expect(day.loadKWh).toBeGreaterThan(day.pvKWh);
  });

  it('orders the costs sensibly', () => {
    const day = week.days[0]!;
    // A weekday with more load than PV, starting with 3 kWh above the reserve: self-consumption spends them on the
    // load and stores what little surplus there is, so it cannot cost more than no battery.
    expect(day.cost.ruleBased).toBeLessThan(day.cost.noBattery);
    // The optimizer may buy energy for later, but not so that the day is lost even with that energy valued.
    expect(day.cost.optimizer).toBeLessThan(day.cost.noBattery);
    expect(adjustedCost(day, 'optimizer')).toBeLessThan(adjustedCost(day, 'noBattery'));
    // A 10 kWh battery is worth a few currency units a day here, not tens: the accounting is not off by a unit.
    expect(day.cost.noBattery - day.cost.optimizer).toBeLessThan(5);
    expect(day.cost.noBattery - day.cost.ruleBased).toBeLessThan(5);
  });

  it('keeps each battery between its reserve and the BMS maximum', () => {
    const day = week.days[0]!;
    for (const c of ['optimizer', 'ruleBased'] as const) {
      expect(day.storedStartKWh[c]).toBeCloseTo(5, 6);
      expect(day.storedEndKWh[c]).toBeGreaterThan(2 - 0.01);
      expect(day.storedEndKWh[c]).toBeLessThanOrEqual(9.5 + 1e-9);
    }
  });

  it('gives the same day for the same seed', async () => {
    const again = await simulateWeek(options, solver);
    expect(again.days[0]?.cost).toEqual(week.days[0]?.cost);
  });
});
