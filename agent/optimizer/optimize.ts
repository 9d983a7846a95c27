/**
 * The optimizer's two questions: "what is the best schedule for this site?" and "how much would the site sell
 * (or buy) in interval t if the P2P price were p?" (the market's price-response curves). Both formulate the same
 * model and hand it to a Solver (a warm HiGHS in a worker thread on the gateway), so polling never waits.
 */
import { checkSite, type Diagnosis, explainIis } from './diagnose.js';
import { formulate } from './formulate.js';
import { isMip, type LpVariant } from './lp.js';
import { type SiteModel, stepStart } from './model.js';
import { extractSchedule, fallbackSchedule, type SiteSchedule } from './schedule.js';
import type { Solver } from './solver.js';

export interface OptimizeOptions {
  readonly timeLimitSeconds?: number;
}

/** Solves a site; never throws for a bad model: a fallback schedule with a diagnosis comes back instead. */
export async function optimizeSite(
  site: SiteModel,
  solver: Solver,
  options: OptimizeOptions = {},
): Promise<SiteSchedule> {
  const checks = checkSite(site);
  if (checks.some((d) => d.severity === 'error')) return fallbackSchedule(site, checks);
  const f = formulate(site);
  const mip = isMip(f.lp);
  const result = await solver.solve(f.lp, {
    iis: true,
    ...(options.timeLimitSeconds === undefined ? {} : { timeLimitSeconds: options.timeLimitSeconds }),
  });
  if (result.status === 'optimal' || (result.status === 'time-limit' && result.colValue.length > 0)) {
    const diagnosis: Diagnosis[] = [...checks];
    if (result.status === 'time-limit') {
      diagnosis.push({
        severity: 'warning',
        constraint: 'time limit',
        message: `the solver stopped at its time limit; the schedule is feasible but may not be optimal`,
      });
    }
    return extractSchedule(site, f, result.colValue, result.rowDual, { diagnosis, solveMs: result.solveMs, mip });
  }
  const why: Diagnosis =
    result.status === 'infeasible' && result.iis !== undefined && result.iis.rows.length > 0
      ? explainIis(result.iis.rows, f.rowMeaning)
      : {
          severity: 'error',
          constraint: `solver status ${result.status}`,
          message: `the solver found no schedule (${result.status}${result.message ? `: ${result.message}` : ''})`,
        };
  return fallbackSchedule(site, [...checks, why]);
}

export interface PricePoint {
  /** P2P price, currency per kWh. */
  readonly price: number;
  /** Mean power the site would sell (+) or buy (-) over the interval at that price, W. */
  readonly netW: number;
}

export interface PriceResponseCurve {
  readonly step: number;
  /** Interval start, ms UTC. */
  readonly start: number;
  /** Ascending in price; netW never decreases with price. */
  readonly points: readonly PricePoint[];
}

export interface PriceResponseRequest {
  /** Intervals to answer for (indices in the horizon). */
  readonly steps: readonly number[];
  /** Prices to ask at; default: `points` prices spread over [lowest feed-in, highest import] of that interval. */
  readonly prices?: (step: number) => readonly number[];
  readonly points?: number;
  /** Largest P2P power per interval, W; default the sum of the buildings' connection limits. */
  readonly limitW?: number;
}

/** Default price points of an interval: the band where trading beats the grid for both sides. */
export function priceBand(site: SiteModel, step: number, points: number): number[] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const b of site.buildings) {
    lo = Math.min(lo, b.grid.exportPrice[step] ?? 0);
    hi = Math.max(hi, b.grid.importPrice[step] ?? 0);
  }
  if (!(hi > lo)) return [lo];
  const n = Math.max(2, points);
  return Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
}

/**
 * Price-response curves by re-solving: the model gets a buy and a sell column per requested interval (closed by
 * default), and each (interval, price) opens one pair at that price; warm starts make each re-solve a few simplex
 * iterations. Within the band [feed-in, import] no arbitrage exists, so the answer is the quantity that is truly
 * optimal for the site at that price, other intervals held at grid prices and committed trades.
 */
export async function priceResponse(
  site: SiteModel,
  solver: Solver,
  request: PriceResponseRequest,
): Promise<PriceResponseCurve[]> {
  const checks = checkSite(site);
  const errors = checks.filter((d) => d.severity === 'error');
  if (errors.length > 0) throw new Error(`cannot compute price response: ${errors.map((d) => d.message).join('; ')}`);
  const limitW =
    request.limitW ?? site.buildings.reduce((s, b) => s + Math.max(b.grid.importLimitW, b.grid.exportLimitW), 0);
  const steps = [...new Set(request.steps)].sort((a, b) => a - b);
  const market = steps.map((step) => ({ step, price: 0, limitW }));
  const f = formulate({ ...site, market });
  const dt = site.horizon.stepMs / 3_600_000;
  const variants: LpVariant[] = [];
  const asked: { step: number; price: number }[] = [];
  const cols: number[] = [];
  // Every market column starts closed; a variant opens one interval's pair.
  const colUpper = Float64Array.from(f.lp.colUpper);
  for (const step of steps) {
    const buy = f.columns.marketBuy[step] ?? -1;
    const sell = f.columns.marketSell[step] ?? -1;
    colUpper[buy] = 0;
    colUpper[sell] = 0;
    cols.push(buy, sell);
  }
  const lp = { ...f.lp, colUpper };
  for (const step of steps) {
    const prices = request.prices?.(step) ?? priceBand(site, step, request.points ?? 9);
    const buy = f.columns.marketBuy[step] ?? -1;
    const sell = f.columns.marketSell[step] ?? -1;
    for (const price of prices) {
      variants.push({
        colBounds: [
          { col: buy, lower: 0, upper: limitW / 1000 },
          { col: sell, lower: 0, upper: limitW / 1000 },
        ],
        colCosts: [
          { col: buy, cost: price * dt },
          { col: sell, cost: -price * dt },
        ],
      });
      asked.push({ step, price });
    }
  }
  const results = await solver.solveVariants(lp, variants, cols);
  const byStep = new Map<number, PricePoint[]>();
  results.forEach((r, i) => {
    const q = asked[i]!;
    if (r.status !== 'optimal') {
      throw new Error(`price response at interval ${q.step}, price ${q.price}: solver status ${r.status}`);
    }
    const k = steps.indexOf(q.step);
    const netKw = (r.values[2 * k + 1] ?? 0) - (r.values[2 * k] ?? 0);
    const list = byStep.get(q.step) ?? [];
    list.push({ price: q.price, netW: Math.round(netKw * 1000 * 1000) / 1000 });
    byStep.set(q.step, list);
  });
  return steps.map((step) => {
    const points = (byStep.get(step) ?? []).sort((a, b) => a.price - b.price);
    // A degenerate LP may return any point of an optimal face; keep the curve monotone as the market expects.
    for (let i = 1; i < points.length; i++) {
      if (points[i]!.netW < points[i - 1]!.netW) points[i] = { ...points[i]!, netW: points[i - 1]!.netW };
    }
    return { step, start: stepStart(site.horizon, step), points };
  });
}
