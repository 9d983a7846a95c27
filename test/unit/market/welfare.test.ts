import { beforeAll, describe, expect, it } from 'vitest';
import { normalizeCurve, type PriceResponseCurve } from '../../../agent/market/curve.js';
import {
  buildWelfareLp,
  centralOptimum,
  equilibriumPrice,
  evaluateOutcome,
  flexibilityCost,
  gridOnlyPosition,
  type SolveLp,
  type WelfareParticipant,
  welfareGap,
} from '../../../agent/market/welfare.js';
import { loadHighsEngine } from '../../../agent/optimizer/highs.js';
import { evaluateObjective, maxViolation } from '../../../agent/optimizer/lp.js';

const T = Date.UTC(2025, 5, 1, 12);
const GRID = { importPrice: 300_000, exportPrice: 100_000 };

function curve(points: [number, number][]): PriceResponseCurve {
  return normalizeCurve({ interval: T, points: points.map(([price, netWh]) => ({ price, netWh })) });
}

// The case solvable by hand: a seller whose marginal cost rises linearly from 0.10 to 0.30 over 0..10 kWh, and a
// buyer whose marginal value falls from 0.30 to 0.10 over 0..10 kWh. Supply meets demand at 0.20 and 5 kWh; the
// welfare is the triangle between the curves: 1/2 · 5 kWh · (0.30 - 0.10) = 0.5 currency = 500,000 micro-units.
// Trading with the grid alone, neither trades (the seller gets 0.10, the buyer pays 0.30): welfare 0.
const seller: WelfareParticipant = {
  id: 'seller',
  curve: curve([
    [100_000, 0],
    [300_000, 10_000],
  ]),
};
const buyer: WelfareParticipant = {
  id: 'buyer',
  curve: curve([
    [100_000, -10_000],
    [300_000, 0],
  ]),
};

let solve: SolveLp;
beforeAll(async () => {
  const engine = await loadHighsEngine();
  solve = (lp) => engine.solve(lp);
});

describe('welfare by hand', () => {
  it('grid-only positions and the cost of moving along a curve', () => {
    expect(gridOnlyPosition(seller.curve, GRID)).toBe(0);
    expect(gridOnlyPosition(buyer.curve, GRID)).toBe(0);
    // Seller: ∫_0^5000 (100,000 + 20·s) ds / 1000 = (5e8 + 2.5e8) / 1000.
    expect(flexibilityCost(seller.curve, GRID, 0, 5_000)).toBeCloseTo(750_000, 6);
    // Buyer: buying 5 kWh it values between 0.30 and 0.20: -(5,000 · 250,000) / 1000.
    expect(flexibilityCost(buyer.curve, GRID, 0, -5_000)).toBeCloseTo(-1_250_000, 6);
    const must = curve([[0, 4_000]]); // must sell 4 kWh at any price: it exports them at feed-in
    expect(gridOnlyPosition(must, GRID)).toBe(4_000);
    expect(gridOnlyPosition(curve([[0, -3_000]]), GRID)).toBe(-3_000);
  });

  it('evaluates the equilibrium outcome as the triangle between the curves', () => {
    const e = evaluateOutcome([seller, buyer], GRID, [5_000, -5_000], 0, 0);
    expect(e.welfare).toBeCloseTo(500_000, 6);
    expect(e.gridOnlyCost).toBe(0);
    expect(equilibriumPrice([seller.curve, buyer.curve], GRID)).toBe(200_000);
  });

  it('the LP solved by HiGHS finds it', async () => {
    const opt = await centralOptimum([seller, buyer], GRID, solve);
    expect(opt.status).toBe('optimal');
    expect(opt.form).toBe('pool');
    expect(opt.positions[0]).toBeCloseTo(5_000, 4);
    expect(opt.positions[1]).toBeCloseTo(-5_000, 4);
    expect(opt.gridImportWh).toBeCloseTo(0, 6);
    expect(opt.gridExportWh).toBeCloseTo(0, 6);
    // 5 kWh is a column boundary (16 columns of 625 Wh per piece), so the LP's own objective is exact too.
    expect(opt.lpObjective).toBeCloseTo(-500_000, 3);
    expect(opt.evaluation.welfare).toBeCloseTo(500_000, 3);
    // The balance row's dual: any price between the last column used (0.19375) and the next (0.20625).
    expect(opt.price).toBeGreaterThanOrEqual(193_750);
    expect(opt.price).toBeLessThanOrEqual(206_250);
  });

  it('the LP is what it says: costs per Wh at column middles, one balance row', () => {
    const built = buildWelfareLp([seller, buyer], GRID, { subdivisions: 2 });
    expect(built.lp.colNames).toHaveLength(2 * 2 + 2);
    expect([...built.lp.colCost.slice(0, 2)]).toEqual([150, 250]); // seller: 0.15 and 0.25 per kWh, per Wh
    expect(built.lp.rowNames).toEqual(['balance']);
    // The buyer's columns count from its lowest position (-10 kWh); the offset moves the origin to its grid-only
    // position (0): minus the area from -10 to 0 kWh, 10,000 · 200,000 / 1000.
    expect(built.lp.offset).toBeCloseTo(-2_000_000, 6);
    // Seller 5 kWh, buyer 5 kWh (first halves of both): a feasible point whose cost is the hand-computed one.
    const x = [5_000, 0, 5_000, 0, 0, 0];
    expect(maxViolation(built.lp, x).amount).toBeCloseTo(0, 9);
    expect(evaluateObjective(built.lp, x)).toBeCloseTo(-500_000, 6);
  });
});

describe('the grid in the optimum', () => {
  it('a surplus nobody wants is exported at feed-in: no gain from trade', async () => {
    const a = { id: 'a', curve: curve([[0, 4_000]]) };
    const b = { id: 'b', curve: curve([[0, 1_000]]) };
    const opt = await centralOptimum([a, b], GRID, solve);
    expect(opt.gridExportWh).toBeCloseTo(5_000, 6);
    expect(opt.evaluation.welfare).toBeCloseTo(0, 6);
  });

  it('a must-buy meets a must-sell: both save the spread', async () => {
    const a = { id: 'a', curve: curve([[0, 4_000]]) };
    const b = { id: 'b', curve: curve([[0, -3_000]]) };
    const opt = await centralOptimum([a, b], GRID, solve);
    expect(opt.gridExportWh).toBeCloseTo(1_000, 6);
    expect(opt.gridImportWh).toBeCloseTo(0, 6);
    // 3 kWh not imported at 0.30 nor exported at 0.10.
    expect(opt.evaluation.welfare).toBeCloseTo(3 * 200_000, 6);
  });
});

describe('eligibility: the pairwise form', () => {
  it('a green-only buyer and a brown seller cannot trade; the pool form would', async () => {
    const brown = { ...seller, green: false };
    const picky = { ...buyer, rules: { greenOnly: true } };
    const opt = await centralOptimum([brown, picky], GRID, solve);
    expect(opt.form).toBe('pairs');
    expect(opt.evaluation.welfare).toBeCloseTo(0, 6);
    const greenSeller = { ...seller, green: true };
    const opt2 = await centralOptimum([greenSeller, picky], GRID, solve);
    expect(opt2.evaluation.welfare).toBeCloseTo(500_000, 3);
  });

  it('denied counterparties are honoured from either side', async () => {
    const denying = { ...buyer, rules: { deny: ['seller'] } };
    const opt = await centralOptimum([seller, denying], GRID, solve);
    expect(opt.evaluation.welfare).toBeCloseTo(0, 6);
  });
});

describe('welfareGap', () => {
  it('is the share of the achievable benefit left on the table', () => {
    expect(welfareGap(500_000, 495_000)).toBeCloseTo(0.01, 12);
    expect(welfareGap(0, 0)).toBe(0);
    expect(welfareGap(0, -1)).toBe(Number.POSITIVE_INFINITY);
  });
});
