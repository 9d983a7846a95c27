/**
 * Price-response curves: what an MGMC's optimizer tells its market agent about one market interval.
 *
 * A curve is a list of points (price, netWh): at `price` (micro-units of currency per kWh) the MGMC would net-sell
 * `netWh` (positive: surplus it would sell, negative: deficit it would buy). Between points the curve is linear, outside
 * them flat. netWh never decreases as the price rises: a higher price never makes anyone buy more or sell less. That
 * is what an optimizer's parametric answer looks like (its net export is the derivative of a convex value function of
 * the price), and it is what makes the market's price adjustment converge (docs/market.md).
 *
 * Grid prices bound the useful band: nobody sells peer to peer below the feed-in (export) price or buys above the
 * retail (import) price, so curves are given on [exportPrice, importPrice] and anything outside is irrelevant.
 */

export interface CurvePoint {
  /** micro-units of currency per kWh, integer >= 0 */
  readonly price: number;
  /** integer Wh; + = the MGMC would sell this much, - = it would buy */
  readonly netWh: number;
}

export interface PriceResponseCurve {
  /** Start of the market interval, ms since the Unix epoch (UTC). */
  readonly interval: number;
  /** At least one point; normalizeCurve sorts them by price. */
  readonly points: readonly CurvePoint[];
}

/** The grid's prices for one interval (micro-units per kWh): the band every P2P price lies in. */
export interface GridPrices {
  /** Retail price for energy taken from the grid. */
  readonly importPrice: number;
  /** Feed-in price for energy sent to the grid. */
  readonly exportPrice: number;
}

export class CurveError extends Error {
  override name = 'CurveError';
}

export interface NormalizeOptions {
  /** Names the curve in errors, e.g. "curve of 0xAb… for 2025-06-01T10:00Z". */
  readonly where?: string;
  /**
   * A drop in netWh of at most this many Wh between neighbouring points is repaired (lifted to the running maximum)
   * instead of refused: solvers answer a degenerate LP with any optimal vertex, which can wobble by a few Wh. Default 0.
   */
  readonly repairToleranceWh?: number;
}

/**
 * A valid curve: points sorted by price, duplicates merged, netWh non-decreasing (drops within the tolerance
 * repaired). Throws a CurveError saying which point is wrong and what to do.
 */
export function normalizeCurve(curve: PriceResponseCurve, options: NormalizeOptions = {}): PriceResponseCurve {
  const where = options.where ?? 'price-response curve';
  const tolerance = options.repairToleranceWh ?? 0;
  if (!Number.isSafeInteger(tolerance) || tolerance < 0) {
    throw new CurveError(`${where}: repairToleranceWh must be an integer >= 0, got ${tolerance}`);
  }
  if (typeof curve !== 'object' || curve === null) throw new CurveError(`${where}: not a curve object`);
  if (!Number.isSafeInteger(curve.interval) || curve.interval < 0) {
    throw new CurveError(`${where}: interval must be the interval start in ms since the epoch, got ${curve.interval}`);
  }
  if (!Array.isArray(curve.points) || curve.points.length === 0) {
    throw new CurveError(`${where}: a curve needs at least one point (price, netWh)`);
  }
  curve.points.forEach((p, i) => {
    if (typeof p !== 'object' || p === null) throw new CurveError(`${where}: point ${i} is not an object`);
    if (!Number.isSafeInteger(p.price) || p.price < 0) {
      throw new CurveError(`${where}: point ${i} price ${p.price} must be an integer >= 0 (micro-units per kWh)`);
    }
    if (!Number.isSafeInteger(p.netWh)) {
      throw new CurveError(`${where}: point ${i} netWh ${p.netWh} must be an integer (Wh)`);
    }
  });
  const sorted = [...curve.points].sort((a, b) => a.price - b.price);
  const points: CurvePoint[] = [];
  for (const p of sorted) {
    const last = points[points.length - 1];
    if (last !== undefined && last.price === p.price) {
      if (last.netWh === p.netWh) continue;
      throw new CurveError(
        `${where}: two points at price ${p.price} with netWh ${last.netWh} and ${p.netWh}; ` +
          `a step needs two prices (e.g. ${p.price} and ${p.price + 1})`,
      );
    }
    if (last !== undefined && p.netWh < last.netWh) {
      const drop = last.netWh - p.netWh;
      if (drop > tolerance) {
        throw new CurveError(
          `${where}: netWh falls from ${last.netWh} at price ${last.price} to ${p.netWh} at price ${p.price}; ` +
            'a higher price must never mean selling less or buying more (check the optimizer that made it)' +
            (tolerance > 0 ? ` (drop ${drop} Wh > repair tolerance ${tolerance} Wh)` : ''),
        );
      }
      points.push({ price: p.price, netWh: last.netWh });
      continue;
    }
    points.push({ price: p.price, netWh: p.netWh });
  }
  return { interval: curve.interval, points };
}

/** Checks the band itself: integers, export <= import. Throws a CurveError. */
export function checkGridPrices(grid: GridPrices, where = 'grid prices'): void {
  const { importPrice, exportPrice } = grid;
  if (!Number.isSafeInteger(importPrice) || importPrice < 0 || !Number.isSafeInteger(exportPrice) || exportPrice < 0) {
    throw new CurveError(`${where}: import and export prices must be integers >= 0 (micro-units per kWh)`);
  }
  if (exportPrice > importPrice) {
    throw new CurveError(
      `${where}: feed-in price ${exportPrice} is above the import price ${importPrice}; ` +
        'buying from the grid to sell it back would be free money',
    );
  }
}

/** Net Wh at `price` (exact, not rounded): linear between points, flat outside. Expects a normalized curve. */
export function netAt(curve: PriceResponseCurve, price: number): number {
  const pts = curve.points;
  const first = pts[0] as CurvePoint;
  if (price <= first.price) return first.netWh;
  const last = pts[pts.length - 1] as CurvePoint;
  if (price >= last.price) return last.netWh;
  // Binary search for the segment [lo, lo + 1] holding price.
  let lo = 0;
  let hi = pts.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((pts[mid] as CurvePoint).price <= price) lo = mid;
    else hi = mid;
  }
  const a = pts[lo] as CurvePoint;
  const b = pts[hi] as CurvePoint;
  return a.netWh + ((b.netWh - a.netWh) * (price - a.price)) / (b.price - a.price);
}

/**
 * Net Wh at `price` as a whole number, rounded toward zero: an order never promises a Wh the MGMC would not sell,
 * nor asks for one it would not buy, at that price.
 */
export function netWhAt(curve: PriceResponseCurve, price: number): number {
  const n = Math.trunc(netAt(curve, price));
  return n === 0 ? 0 : n; // no -0
}

/**
 * The inverse: the price at which the MGMC's net is `netWh`. Where the curve is flat over a price range (it would
 * sell the same at any of those prices), `which` picks the lowest or the highest of them. Returns undefined when the
 * curve never reaches `netWh` (below its first or above its last netWh). Expects a normalized curve.
 */
export function priceAt(
  curve: PriceResponseCurve,
  netWh: number,
  which: 'lowest' | 'highest' = 'lowest',
): number | undefined {
  const pts = curve.points;
  const first = pts[0] as CurvePoint;
  const last = pts[pts.length - 1] as CurvePoint;
  if (netWh < first.netWh || netWh > last.netWh) return undefined;
  if (which === 'lowest') {
    // First point reaching netWh; interpolate within the segment that crosses it.
    for (let k = 0; k < pts.length; k++) {
      const b = pts[k] as CurvePoint;
      if (b.netWh >= netWh) {
        if (k === 0 || b.netWh === netWh) return b.price;
        const a = pts[k - 1] as CurvePoint;
        return a.price + ((b.price - a.price) * (netWh - a.netWh)) / (b.netWh - a.netWh);
      }
    }
    return last.price;
  }
  for (let k = pts.length - 1; k >= 0; k--) {
    const a = pts[k] as CurvePoint;
    if (a.netWh <= netWh) {
      if (k === pts.length - 1 || a.netWh === netWh) return a.price;
      const b = pts[k + 1] as CurvePoint;
      return a.price + ((b.price - a.price) * (netWh - a.netWh)) / (b.netWh - a.netWh);
    }
  }
  return first.price;
}

/**
 * The curve restricted to [low, high]: points inside kept, the curve's values at `low` and `high` added as end
 * points. The result is what the market and the welfare reference use.
 */
export function clipCurve(curve: PriceResponseCurve, low: number, high: number): PriceResponseCurve {
  if (!(low <= high)) throw new CurveError(`clip band [${low}, ${high}] is empty`);
  const inside = curve.points.filter((p) => p.price > low && p.price < high);
  const points: CurvePoint[] = [{ price: low, netWh: netAt(curve, low) }, ...inside];
  if (high > low) points.push({ price: high, netWh: netAt(curve, high) });
  return { interval: curve.interval, points };
}
