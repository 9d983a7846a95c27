import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formulate } from '../../../agent/optimizer/formulate.js';
import { evaluateObjective, maxViolation } from '../../../agent/optimizer/lp.js';
import type { BuildingModel, SiteModel } from '../../../agent/optimizer/model.js';
import { optimizeSite, priceResponse } from '../../../agent/optimizer/optimize.js';
import type { SiteSchedule } from '../../../agent/optimizer/schedule.js';
import { createInlineSolver, type Solver } from '../../../agent/optimizer/solver.js';
import { battery, dayHorizon, namedCases, randomSite } from '../../../bench/optimizer-cases.js';

let solver: Solver;
beforeAll(async () => {
  solver = await createInlineSolver();
});
afterAll(async () => {
  await solver.close();
});

const H2 = { start: Date.UTC(2026, 0, 5), stepMs: 3_600_000, steps: 2 };

function building(overrides: Partial<BuildingModel>): BuildingModel {
  return {
    name: 'b',
    grid: { importLimitW: 20_000, exportLimitW: 20_000, importPrice: [0.3, 0.3], exportPrice: [0.1, 0.1] },
    criticalLoadW: [2_000, 2_000],
    pv: [],
    batteries: [],
    evs: [],
    flexibleLoads: [],
    ...overrides,
  };
}

const site = (buildings: BuildingModel[], extra: Partial<SiteModel> = {}): SiteModel => ({
  horizon: H2,
  buildings,
  trades: [],
  caps: {},
  ...extra,
});

/** Energy balance of one building per interval, from the schedule alone (W). */
function balanceErrors(s: SiteModel, schedule: SiteSchedule): number[] {
  const out: number[] = [];
  s.buildings.forEach((b, bi) => {
    const sb = schedule.buildings[bi]!;
    for (let t = 0; t < s.horizon.steps; t++) {
      let supply = (sb.gridImportW[t] ?? 0) - (sb.gridExportW[t] ?? 0) + (sb.unservedW[t] ?? 0);
      supply += (sb.netW[t] ?? 0) - ((sb.gridImportW[t] ?? 0) - (sb.gridExportW[t] ?? 0)); // P2P share
      let demand = b.criticalLoadW[t] ?? 0;
      for (const d of sb.ders) {
        const p = d.powerW[t] ?? 0;
        if (d.kind === 'pv' || d.kind === 'battery') supply += p;
        else demand += p;
      }
      out.push(Math.abs(supply - demand));
    }
  });
  return out;
}

describe('optimizeSite on hand-checkable cases', () => {
  it('PV only: exports the surplus, imports the deficit, costs add up', async () => {
    const s = site([building({ pv: [{ name: 'pv', forecastW: [3_000, 1_000], curtailable: true, ratedW: 5_000 }] })]);
    const schedule = await optimizeSite(s, solver);
    expect(schedule.status).toBe('optimal');
    const b = schedule.buildings[0]!;
    expect(b.gridExportW).toEqual([1_000, 0]);
    expect(b.gridImportW).toEqual([0, 1_000]);
    expect(schedule.cost.import).toBeCloseTo(0.3, 9);
    expect(schedule.cost.export).toBeCloseTo(0.1, 9);
    expect(schedule.cost.total).toBeCloseTo(0.2, 9);
    expect(schedule.netPositionW).toEqual([-1_000, 1_000]);
    // The dual of the balance is the marginal price: exporting in interval 0, importing in interval 1.
    expect(b.marginalPrice[0]).toBeCloseTo(0.1, 9);
    expect(b.marginalPrice[1]).toBeCloseTo(0.3, 9);
  });

  it('battery shifts cheap energy to the expensive interval and pays its wear', async () => {
    const s = site([
      building({
        grid: { importLimitW: 20_000, exportLimitW: 0, importPrice: [0.1, 0.5], exportPrice: [0, 0] },
        batteries: [battery({ energyWh: 2_000, reservePct: 20, terminal: 'free', degradationCostPerKWh: 0.02 })],
      }),
    ]);
    const schedule = await optimizeSite(s, solver);
    const bat = schedule.buildings[0]!.ders.find((d) => d.kind === 'battery')!;
    // Charge in hour 0, discharge 2 kW (the load) in hour 1; the plan never goes below the 20 % reserve.
    expect(bat.powerW[1]).toBeCloseTo(2_000, 6);
    expect(bat.powerW[0]).toBeLessThan(0);
    expect(Math.min(...bat.socPct!)).toBeGreaterThanOrEqual(20 - 1e-6);
    const charged = -bat.powerW[0]! / 1000;
    const cost = 0.1 * (2 + charged) + 0.02 * 0.5 * (charged + 2);
    expect(schedule.cost.total).toBeCloseTo(cost, 6);
  });

  it('an EV that cannot be charged in time: warning, full power, shortfall shown', async () => {
    const s = site([
      building({
        evs: [
          {
            name: 'ev',
            maxPowerW: 11_000,
            arrival: H2.start,
            departure: H2.start + 3_600_000,
            energyWh: 20_000,
            shortfallCostPerKWh: 1,
          },
        ],
      }),
    ]);
    const schedule = await optimizeSite(s, solver);
    expect(schedule.status).toBe('optimal');
    const ev = schedule.buildings[0]!.ders.find((d) => d.kind === 'ev')!;
    expect(ev.powerW).toEqual([11_000, 0]);
    expect(ev.shortfallWh).toBeCloseTo(9_000, 6);
    const warning = schedule.diagnosis.find((d) => d.der === 'ev');
    expect(warning?.severity).toBe('warning');
    expect(warning?.message).toContain('needs 20.0 kWh');
    expect(warning?.message).toContain('at most 11.0 kWh');
  });

  it('contradicting SoC limits: a fallback with the battery idle and a diagnosis naming the limits', async () => {
    const s = site([building({ batteries: [battery({ socMinPct: 80, socMaxPct: 60 })] })]);
    const schedule = await optimizeSite(s, solver);
    expect(schedule.status).toBe('fallback');
    expect(schedule.buildings[0]!.ders.find((d) => d.kind === 'battery')!.powerW).toEqual([0, 0]);
    expect(schedule.diagnosis[0]).toMatchObject({ severity: 'error', building: 'b', der: 'battery' });
    expect(schedule.diagnosis[0]!.message).toContain('minimum 80 % must be below maximum 60 %');
    expect(schedule.buildings[0]!.gridImportW).toEqual([2_000, 2_000]);
  });

  it('a DSO cap on import below the load shows as unserved energy, never as a crash', async () => {
    const s = site([building({})], { caps: { maxImportW: [1_500, undefined] } });
    const schedule = await optimizeSite(s, solver);
    expect(schedule.status).toBe('optimal');
    expect(schedule.buildings[0]!.gridImportW[0]).toBeCloseTo(1_500, 6);
    expect(schedule.buildings[0]!.unservedW[0]).toBeCloseTo(500, 6);
  });

  it('negative prices use binaries: the battery never charges and discharges in one interval', async () => {
    const c = namedCases(96).find((x) => x.name === 'negative-prices')!;
    const f = formulate(c.site);
    expect(f.lp.integrality.some((v) => v === 1)).toBe(true);
    const r = await solver.solve(f.lp);
    expect(r.status).toBe('optimal');
    const cols = f.columns.buildings[0]!.batteries[0]!;
    for (let t = 0; t < 96; t++) {
      const ch = r.colValue[cols.charge[t]!]!;
      const dis = r.colValue[cols.discharge[t]!]!;
      expect(Math.min(ch, dis)).toBeLessThan(1e-6);
    }
  });
});

describe('properties on seeded random sites', () => {
  for (let seed = 1; seed <= 12; seed++) {
    it(`seed ${seed}: balance, SoC bounds, limits, cost = objective`, async () => {
      const s = randomSite(seed, 96);
      const f = formulate(s);
      const r = await solver.solve(f.lp);
      expect(r.status).toBe('optimal');
      expect(maxViolation(f.lp, r.colValue).amount).toBeLessThan(1e-6);
      expect(evaluateObjective(f.lp, r.colValue)).toBeCloseTo(r.objective, 6);
      const schedule = await optimizeSite(s, solver);
      expect(schedule.status).toBe('optimal');
      expect(schedule.cost.total).toBeCloseTo(r.objective, 5);
      expect(Math.max(...balanceErrors(s, schedule))).toBeLessThan(0.01);
      s.buildings.forEach((b, bi) => {
        const sb = schedule.buildings[bi]!;
        for (let t = 0; t < s.horizon.steps; t++) {
          expect(sb.gridImportW[t]!).toBeLessThanOrEqual(b.grid.importLimitW + 1e-3);
          expect(sb.gridExportW[t]!).toBeLessThanOrEqual(b.grid.exportLimitW + 1e-3);
        }
        b.batteries.forEach((k) => {
          const d = sb.ders.find((x) => x.kind === 'battery' && x.name === k.name)!;
          const lowest = Math.min((k.energyWh / k.capacityWh) * 100, k.reservePct);
          for (const soc of d.socPct!) {
            expect(soc).toBeGreaterThanOrEqual(Math.min(lowest, k.socMinPct) - 1e-6);
            expect(soc).toBeLessThanOrEqual(k.socMaxPct + 1e-6);
          }
          for (const p of d.powerW) {
            expect(p).toBeLessThanOrEqual(k.maxDischargeW + 1e-3);
            expect(p).toBeGreaterThanOrEqual(-k.maxChargeW - 1e-3);
          }
        });
      });
    });
  }
});

describe('priceResponse', () => {
  it('sells more as the price rises and buys at the bottom of the band', async () => {
    const h = dayHorizon(96);
    const c = namedCases(96).find((x) => x.name === 'pv-battery')!;
    const noon = 52;
    const evening = 76;
    const curves = await priceResponse(c.site, solver, { steps: [noon, evening], points: 7 });
    expect(curves.map((cv) => cv.step)).toEqual([noon, evening]);
    for (const curve of curves) {
      expect(curve.start).toBe(h.start + curve.step * h.stepMs);
      expect(curve.points).toHaveLength(7);
      for (let i = 1; i < curve.points.length; i++) {
        expect(curve.points[i]!.netW).toBeGreaterThanOrEqual(curve.points[i - 1]!.netW);
        expect(curve.points[i]!.price).toBeGreaterThan(curve.points[i - 1]!.price);
      }
    }
    // At noon the PV surplus is for sale at any price above feed-in.
    const atNoon = curves[0]!.points;
    expect(atNoon.at(-1)!.netW).toBeGreaterThan(0);
    // At the top of the band in the evening peak, the battery would rather sell than serve its own load.
    expect(curves[1]!.points.at(-1)!.netW).toBeGreaterThan(curves[1]!.points[0]!.netW);
  });
});
