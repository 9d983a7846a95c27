import { describe, expect, it } from 'vitest';
import {
  CurveError,
  checkGridPrices,
  clipCurve,
  netAt,
  netWhAt,
  normalizeCurve,
  type PriceResponseCurve,
  priceAt,
} from '../../../agent/market/curve.js';

const T = Date.UTC(2025, 5, 1, 12);

function curve(points: [number, number][]): PriceResponseCurve {
  return normalizeCurve({ interval: T, points: points.map(([price, netWh]) => ({ price, netWh })) });
}

describe('normalizeCurve', () => {
  it('sorts points by price and merges exact duplicates', () => {
    const c = normalizeCurve({
      interval: T,
      points: [
        { price: 300, netWh: 50 },
        { price: 100, netWh: -20 },
        { price: 300, netWh: 50 },
        { price: 200, netWh: 10 },
      ],
    });
    expect(c.points).toEqual([
      { price: 100, netWh: -20 },
      { price: 200, netWh: 10 },
      { price: 300, netWh: 50 },
    ]);
  });

  it('refuses netWh that falls as the price rises, naming both points', () => {
    expect(() =>
      curve([
        [100, 10],
        [200, 5],
      ]),
    ).toThrow(/falls from 10 at price 100 to 5 at price 200/);
  });

  it('repairs a drop within the tolerance by lifting it to the running maximum', () => {
    const c = normalizeCurve(
      {
        interval: T,
        points: [
          { price: 100, netWh: 10 },
          { price: 200, netWh: 8 },
          { price: 300, netWh: 30 },
        ],
      },
      { repairToleranceWh: 2 },
    );
    expect(c.points.map((p) => p.netWh)).toEqual([10, 10, 30]);
    expect(() =>
      normalizeCurve(
        {
          interval: T,
          points: [
            { price: 100, netWh: 10 },
            { price: 200, netWh: 7 },
          ],
        },
        { repairToleranceWh: 2, where: 'curve of A' },
      ),
    ).toThrow(/curve of A: .*drop 3 Wh > repair tolerance 2 Wh/);
  });

  it('refuses two different quantities at one price and says how to write a step', () => {
    expect(() =>
      curve([
        [100, 0],
        [100, 5],
      ]),
    ).toThrow(/two points at price 100 .* \(e\.g\. 100 and 101\)/);
  });

  it('refuses floats, negative prices, no points and a bad interval', () => {
    expect(() => curve([[100.5, 1]])).toThrow(CurveError);
    expect(() => curve([[100, 1.5]])).toThrow(/netWh 1.5 must be an integer/);
    expect(() => curve([[-1, 1]])).toThrow(/price -1/);
    expect(() => normalizeCurve({ interval: T, points: [] })).toThrow(/at least one point/);
    expect(() => normalizeCurve({ interval: -5, points: [{ price: 1, netWh: 1 }] })).toThrow(/interval/);
  });
});

describe('interpolation and inverse', () => {
  const c = curve([
    [100_000, -10_000],
    [200_000, 0],
    [250_000, 0],
    [300_000, 10_000],
  ]);

  it('is linear between points and flat outside', () => {
    expect(netAt(c, 150_000)).toBe(-5_000);
    expect(netAt(c, 225_000)).toBe(0);
    expect(netAt(c, 275_000)).toBe(5_000);
    expect(netAt(c, 0)).toBe(-10_000);
    expect(netAt(c, 1_000_000)).toBe(10_000);
  });

  it('rounds toward zero: never promises a Wh it would not trade', () => {
    expect(netWhAt(c, 150_001)).toBe(-4_999); // -4999.9
    expect(netWhAt(c, 275_001)).toBe(5_000); // 5000.2
    expect(Object.is(netWhAt(c, 200_000.5), 0)).toBe(true); // no -0
  });

  it('inverts, choosing the lowest or highest price of a flat stretch', () => {
    expect(priceAt(c, -5_000)).toBe(150_000);
    expect(priceAt(c, 5_000)).toBe(275_000);
    expect(priceAt(c, 0, 'lowest')).toBe(200_000);
    expect(priceAt(c, 0, 'highest')).toBe(250_000);
    expect(priceAt(c, 10_001)).toBeUndefined();
    expect(priceAt(c, -10_001)).toBeUndefined();
  });

  it('clips to a band with the curve’s values at the ends', () => {
    const clipped = clipCurve(c, 150_000, 275_000);
    expect(clipped.points).toEqual([
      { price: 150_000, netWh: -5_000 },
      { price: 200_000, netWh: 0 },
      { price: 250_000, netWh: 0 },
      { price: 275_000, netWh: 5_000 },
    ]);
  });
});

describe('checkGridPrices', () => {
  it('accepts a band and refuses a feed-in price above the import price', () => {
    expect(() => checkGridPrices({ importPrice: 300_000, exportPrice: 80_000 })).not.toThrow();
    expect(() => checkGridPrices({ importPrice: 80_000, exportPrice: 300_000 })).toThrow(/free money/);
    expect(() => checkGridPrices({ importPrice: 1.5, exportPrice: 0 })).toThrow(/integers/);
  });
});
