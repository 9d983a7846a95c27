/**
 * The centralized reference: the welfare-maximizing clearing of the same participants' curves at the same grid
 * prices, as an LP (LpBuilder) for HiGHS. It measures how far the bargaining outcome is from the optimum.
 *
 * Welfare, in micro-units of currency (docs/market.md, "Welfare"):
 * - A participant's curve n(p) says how much it would net-supply at price p; its inverse p(x) is its marginal cost of
 *   supplying the x-th Wh (for a buyer, the marginal value of the Wh it gives up). Moving from position a to b costs
 *   it F(a, b) = ∫_a^b p(x) dx: the area under its inverse curve, 1/1000 of price·Wh.
 * - Its reference position x0 is where it sits trading with the grid alone: n(exportPrice) when that is a surplus
 *   (it sells it at feed-in), n(importPrice) when that is a deficit (it buys it at retail), else 0.
 * - The community's total cost of an outcome = Σ F(x0_i, x_i) + importPrice·(Wh imported) − exportPrice·(Wh exported)
 *   over each participant's own grid flows. P2P payments are transfers between participants and cancel.
 * - Welfare = the grid-only cost − the total cost: what trading among the participants is worth. The welfare gap of
 *   an outcome is (W* − W) / W*, the share of the achievable benefit it leaves on the table.
 *
 * The LP: each curve segment (between two points) is a linear piece of marginal cost; it is cut into `subdivisions`
 * columns of equal width, each priced at its middle (exact for a fully used piece, within 1/(8·m²) of a piece's cost
 * spread otherwise), so the LP is linear. Participants' positions are those columns plus their lowest position; one
 * balance row ties them to grid import and export. With eligibility rules (green only, denied or allowed anonyms),
 * the pool is replaced by pairwise flows f_ij for the pairs that may trade and each participant has its own grid
 * flows; that form lets a participant buy and sell at once (one order per round cannot), so it is an upper bound.
 * Outcomes are always evaluated with the exact integral, whatever produced them.
 */
import type { LinearProgram, LpResult, LpStatus } from '../optimizer/lp.js';
import { LpBuilder } from '../optimizer/lp.js';
import { type CurvePoint, clipCurve, type GridPrices, netAt, type PriceResponseCurve } from './curve.js';
import type { ContractRules } from './rules.js';
import { counterpartyAllowed } from './rules.js';

export interface WelfareParticipant {
  /** Anonym or label (errors and results name it). */
  readonly id: string;
  readonly curve: PriceResponseCurve;
  /** Its energy is green. */
  readonly green?: boolean;
  /** Only the rules that restrict who trades with whom matter here. */
  readonly rules?: Pick<ContractRules, 'greenOnly' | 'allow' | 'deny'>;
}

export type SolveLp = (lp: LinearProgram) => LpResult | Promise<LpResult>;

export interface WelfareEvaluation {
  /** Community cost of the outcome (micro-units). */
  readonly totalCost: number;
  /** The same with everyone trading with the grid alone. */
  readonly gridOnlyCost: number;
  /** gridOnlyCost − totalCost. */
  readonly welfare: number;
  readonly gridImportWh: number;
  readonly gridExportWh: number;
}

export interface CentralOptimum {
  readonly status: LpStatus;
  /** Net position per participant (Wh, + = supply), in the participants' order. */
  readonly positions: readonly number[];
  readonly gridImportWh: number;
  readonly gridExportWh: number;
  /** The clearing price the balance row's dual implies (pool form only), micro-units per kWh. */
  readonly price?: number;
  /** The LP's own objective: the total cost with its piecewise-linear costs (micro-units). */
  readonly lpObjective: number;
  /** The optimum evaluated exactly. */
  readonly evaluation: WelfareEvaluation;
  readonly solveMs: number;
  readonly form: 'pool' | 'pairs';
  readonly columns: number;
  readonly rows: number;
}

export interface CentralOptions {
  /** Columns per linear piece of a curve (default 16). */
  readonly subdivisions?: number;
}

export class WelfareError extends Error {
  override name = 'WelfareError';
}

/** The curve on the band [exportPrice, importPrice], the only part anyone trades on. */
export function bandCurve(curve: PriceResponseCurve, grid: GridPrices): PriceResponseCurve {
  return clipCurve(curve, grid.exportPrice, grid.importPrice);
}

/** Where a participant sits trading with the grid alone (Wh, + = selling). */
export function gridOnlyPosition(curve: PriceResponseCurve, grid: GridPrices): number {
  const low = netAt(curve, grid.exportPrice);
  if (low > 0) return low;
  const high = netAt(curve, grid.importPrice);
  if (high < 0) return high;
  return 0;
}

/**
 * ∫_from^to p(x) dx over the curve's inverse on the band: the cost (micro-units) of moving its net supply from `from`
 * to `to` Wh. Positions outside what the curve reaches on the band are clamped to it.
 */
export function flexibilityCost(curve: PriceResponseCurve, grid: GridPrices, from: number, to: number): number {
  const pts = bandCurve(curve, grid).points;
  return (areaTo(pts, to) - areaTo(pts, from)) / 1000;
}

/** ∫ from the first point's netWh to x of the inverse curve (price·Wh). */
function areaTo(pts: readonly CurvePoint[], x: number): number {
  let area = 0;
  for (let k = 0; k + 1 < pts.length; k++) {
    const a = pts[k] as CurvePoint;
    const b = pts[k + 1] as CurvePoint;
    if (b.netWh <= a.netWh) continue;
    if (x <= a.netWh) break;
    const end = Math.min(x, b.netWh);
    const pEnd = a.price + ((b.price - a.price) * (end - a.netWh)) / (b.netWh - a.netWh);
    area += ((end - a.netWh) * (a.price + pEnd)) / 2;
    if (x <= b.netWh) break;
  }
  return area;
}

/**
 * Evaluates an outcome exactly: participants at `positions` (Wh), with `gridImportWh` and `gridExportWh` in total
 * over their own grid flows.
 */
export function evaluateOutcome(
  participants: readonly WelfareParticipant[],
  grid: GridPrices,
  positions: readonly number[],
  gridImportWh: number,
  gridExportWh: number,
): WelfareEvaluation {
  if (positions.length !== participants.length) {
    throw new WelfareError(`${positions.length} positions for ${participants.length} participants`);
  }
  let flex = 0;
  let gridOnlyCost = 0;
  participants.forEach((p, i) => {
    const x0 = gridOnlyPosition(p.curve, grid);
    flex += flexibilityCost(p.curve, grid, x0, positions[i] as number);
    gridOnlyCost += x0 < 0 ? (-x0 * grid.importPrice) / 1000 : (-x0 * grid.exportPrice) / 1000;
  });
  const totalCost = flex + (gridImportWh * grid.importPrice - gridExportWh * grid.exportPrice) / 1000;
  return { totalCost, gridOnlyCost, welfare: gridOnlyCost - totalCost, gridImportWh, gridExportWh };
}

/** (W* − W) / W*: 0 when W* is 0 and W is too. */
export function welfareGap(optimum: number, outcome: number): number {
  if (optimum <= 0) return outcome >= optimum ? 0 : Number.POSITIVE_INFINITY;
  return (optimum - outcome) / optimum;
}

/** Whether i may sell to j under both sides' rules. */
export function maySell(seller: WelfareParticipant, buyer: WelfareParticipant): boolean {
  if (seller === buyer) return false;
  if (buyer.rules?.greenOnly === true && seller.green !== true) return false;
  if (seller.rules !== undefined && !counterpartyAllowed(seller.rules, buyer.id)) return false;
  if (buyer.rules !== undefined && !counterpartyAllowed(buyer.rules, seller.id)) return false;
  return true;
}

interface Built {
  readonly lp: LinearProgram;
  readonly form: 'pool' | 'pairs';
  readonly lowest: readonly number[];
  readonly segmentCols: readonly (readonly number[])[];
  readonly importCols: readonly number[];
  readonly exportCols: readonly number[];
  readonly balanceRows: readonly number[];
}

/** The welfare LP (costs per Wh in micro-units, so the objective is micro-units). */
export function buildWelfareLp(
  participants: readonly WelfareParticipant[],
  grid: GridPrices,
  options: CentralOptions = {},
): Built {
  const m = options.subdivisions ?? 16;
  if (!Number.isSafeInteger(m) || m < 1) throw new WelfareError(`subdivisions must be an integer >= 1, got ${m}`);
  if (participants.length === 0) throw new WelfareError('no participants');
  const pool = participants.every((s) => participants.every((b) => s === b || maySell(s, b)));
  const lpb = new LpBuilder(pool ? 'welfare_pool' : 'welfare_pairs');
  const lowest: number[] = [];
  const segmentCols: number[][] = [];
  participants.forEach((p, i) => {
    const pts = bandCurve(p.curve, grid).points;
    lowest.push((pts[0] as CurvePoint).netWh);
    // Columns measure cost from the lowest position; the offset moves the origin to the grid-only position, so the
    // objective is the total cost of evaluateOutcome (up to the columns' approximation).
    lpb.addOffset(-(areaTo(pts, gridOnlyPosition(p.curve, grid)) / 1000));
    const cols: number[] = [];
    for (let k = 0; k + 1 < pts.length; k++) {
      const a = pts[k] as CurvePoint;
      const b = pts[k + 1] as CurvePoint;
      const width = b.netWh - a.netWh;
      if (width <= 0) continue;
      for (let j = 0; j < m; j++) {
        const price = a.price + ((b.price - a.price) * (j + 0.5)) / m;
        cols.push(lpb.addColumn(`x_${i}_${k}_${j}`, 0, width / m, price / 1000));
      }
    }
    segmentCols.push(cols);
  });
  const importCols: number[] = [];
  const exportCols: number[] = [];
  const balanceRows: number[] = [];
  if (pool) {
    importCols.push(lpb.addColumn('grid_import', 0, Number.POSITIVE_INFINITY, grid.importPrice / 1000));
    exportCols.push(lpb.addColumn('grid_export', 0, Number.POSITIVE_INFINITY, -grid.exportPrice / 1000));
    // Σ x_i + import − export = 0, with x_i = lowest_i + Σ its columns.
    const terms: [number, number][] = segmentCols.flat().map((c) => [c, 1]);
    terms.push([importCols[0] as number, 1], [exportCols[0] as number, -1]);
    const rhs = -lowest.reduce((s, v) => s + v, 0);
    balanceRows.push(lpb.addRow('balance', rhs, rhs, terms));
  } else {
    participants.forEach((_, i) => {
      importCols.push(lpb.addColumn(`import_${i}`, 0, Number.POSITIVE_INFINITY, grid.importPrice / 1000));
      exportCols.push(lpb.addColumn(`export_${i}`, 0, Number.POSITIVE_INFINITY, -grid.exportPrice / 1000));
    });
    const flows: [number, number, number][] = [];
    participants.forEach((s, i) => {
      participants.forEach((b, j) => {
        if (maySell(s, b)) flows.push([i, j, lpb.addColumn(`f_${i}_${j}`, 0, Number.POSITIVE_INFINITY, 0)]);
      });
    });
    participants.forEach((_, i) => {
      // x_i − sales_i + purchases_i − export_i + import_i = 0
      const terms: [number, number][] = (segmentCols[i] as number[]).map((c) => [c, 1]);
      for (const [s, b, col] of flows) {
        if (s === i) terms.push([col, -1]);
        if (b === i) terms.push([col, 1]);
      }
      terms.push([importCols[i] as number, 1], [exportCols[i] as number, -1]);
      const rhs = -(lowest[i] as number);
      balanceRows.push(lpb.addRow(`balance_${i}`, rhs, rhs, terms));
    });
  }
  return {
    lp: lpb.build(),
    form: pool ? 'pool' : 'pairs',
    lowest,
    segmentCols,
    importCols,
    exportCols,
    balanceRows,
  };
}

/**
 * The welfare-maximizing clearing of `participants` at `grid` prices, solved by `solve` (HiGHS through
 * agent/optimizer/highs.ts in the agent). Throws a WelfareError when the solver does not find the optimum.
 */
export async function centralOptimum(
  participants: readonly WelfareParticipant[],
  grid: GridPrices,
  solve: SolveLp,
  options: CentralOptions = {},
): Promise<CentralOptimum> {
  const built = buildWelfareLp(participants, grid, options);
  const result = await solve(built.lp);
  if (result.status !== 'optimal') {
    throw new WelfareError(
      `the welfare LP (${built.lp.colNames.length} columns) ended ${result.status}` +
        (result.message ? `: ${result.message}` : ''),
    );
  }
  const x = result.colValue;
  const positions = built.segmentCols.map(
    (cols, i) => (built.lowest[i] as number) + cols.reduce((s, c) => s + (x[c] ?? 0), 0),
  );
  const gridImportWh = built.importCols.reduce((s, c) => s + (x[c] ?? 0), 0);
  const gridExportWh = built.exportCols.reduce((s, c) => s + (x[c] ?? 0), 0);
  const dual = built.form === 'pool' ? result.rowDual[built.balanceRows[0] as number] : undefined;
  return {
    status: result.status,
    positions,
    gridImportWh,
    gridExportWh,
    ...(dual === undefined ? {} : { price: Math.abs(dual) * 1000 }),
    lpObjective: result.objective,
    evaluation: evaluateOutcome(participants, grid, positions, gridImportWh, gridExportWh),
    solveMs: result.solveMs,
    form: built.form,
    columns: built.lp.colNames.length,
    rows: built.lp.rowNames.length,
  };
}

/**
 * The uniform price at which the curves' total net supply crosses zero on the band (bisection on integers), or the
 * band edge when it never does: the competitive equilibrium, which the pool LP's optimum matches. For tests and
 * diagnostics.
 */
export function equilibriumPrice(curves: readonly PriceResponseCurve[], grid: GridPrices): number {
  const total = (p: number) => curves.reduce((s, c) => s + netAt(c, p), 0);
  let lo = grid.exportPrice;
  let hi = grid.importPrice;
  if (total(lo) >= 0) return lo;
  if (total(hi) <= 0) return hi;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (total(mid) >= 0) hi = mid;
    else lo = mid;
  }
  return hi;
}
