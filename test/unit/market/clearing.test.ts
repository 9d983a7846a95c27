import { describe, expect, it } from 'vitest';
import { toChecksumAddress } from '../../../agent/identity/keys.js';
import {
  apportion,
  clearingHash,
  clearRound,
  encodeClearing,
  mayMatch,
  type RoundClearing,
  verifyClearing,
} from '../../../agent/market/clearing.js';
import { buildOrder, type Order, type OrderFields } from '../../../agent/market/order.js';
import { seededRandom } from '../../../bench/market.js';

const CHAIN = 4711;
const T = Date.UTC(2025, 5, 1, 12);
const CTX = { interval: T, round: 1 };
const anon = (i: number) => toChecksumAddress(`0x${i.toString(16).padStart(40, '0')}`);

function order(i: number, side: 'offer' | 'bid', qtyWh: number, price: number, over: Partial<OrderFields> = {}): Order {
  return buildOrder(
    { anonym: anon(i), interval: T, side, qtyWh, price, green: false, round: 1, expiry: T, ...over },
    CHAIN,
  );
}

const filled = (c: RoundClearing, o: Order) => c.fills.find((f) => f.id === o.id);

function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function randomBook(rand: () => number, n: number): Order[] {
  const orders: Order[] = [];
  for (let i = 1; i <= n; i++) {
    const side = rand() < 0.5 ? 'offer' : 'bid';
    const price = 100_000 + Math.floor(rand() * 5) * 10_000; // few price levels: ties and levels
    const over: Partial<OrderFields> = { green: rand() < 0.5 };
    if (rand() < 0.15) (over as { exclude?: string[] }).exclude = [anon(1 + Math.floor(rand() * n))];
    orders.push(order(i, side, 1 + Math.floor(rand() * 20_000), price, over));
  }
  return orders;
}

describe('clearRound', () => {
  it('matches a bid at or above an offer at the offer’s price', () => {
    const o = order(1, 'offer', 5_000, 150_000);
    const b = order(2, 'bid', 3_000, 160_000);
    const c = clearRound([o, b], CTX);
    expect(c.trades).toHaveLength(1);
    expect(c.trades[0]).toMatchObject({ seller: anon(1), buyer: anon(2), qtyWh: 3_000, price: 150_000 });
    expect(c.totals).toEqual({ offeredWh: 5_000, askedWh: 3_000, tradedWh: 3_000, unsoldWh: 2_000, unfilledWh: 0 });
    expect(filled(c, o)).toMatchObject({ filledWh: 3_000, market: 'long' });
    expect(filled(c, b)).toMatchObject({ filledWh: 3_000, market: 'long', residualWh: 2_000 });
  });

  it('does not match a bid below the offer', () => {
    const c = clearRound([order(1, 'offer', 5_000, 150_000), order(2, 'bid', 3_000, 149_999)], CTX);
    expect(c.trades).toEqual([]);
  });

  it('serves the cheapest offers first', () => {
    const dear = order(1, 'offer', 5_000, 200_000);
    const cheap = order(2, 'offer', 5_000, 120_000);
    const b = order(3, 'bid', 7_000, 250_000);
    const c = clearRound([dear, cheap, b], CTX);
    expect(filled(c, cheap)?.filledWh).toBe(5_000);
    expect(filled(c, dear)?.filledWh).toBe(2_000);
    expect(c.trades.map((t) => [t.price, t.qtyWh]).sort()).toEqual([
      [120_000, 5_000],
      [200_000, 2_000],
    ]);
  });

  it('rations an oversubscribed offer pro rata and tells everyone the market is short', () => {
    const o = order(1, 'offer', 50, 100_000);
    const b1 = order(2, 'bid', 60, 100_000);
    const b2 = order(3, 'bid', 40, 100_000);
    const c = clearRound([o, b1, b2], CTX);
    expect(filled(c, b1)?.filledWh).toBe(30);
    expect(filled(c, b2)?.filledWh).toBe(20);
    expect(filled(c, o)).toMatchObject({ filledWh: 50, residualWh: 50, market: 'short' });
    expect(filled(c, b1)?.market).toBe('short');
    expect(filled(c, b2)?.market).toBe('short');
  });

  it('gives every order at one price the same answer even when rounding fills one of them exactly', () => {
    // 3 Wh short over three bids: largest remainder leaves one bid filled to the Wh.
    const offers = [order(1, 'offer', 100, 100_000), order(2, 'offer', 100, 100_000)];
    const bids = [order(3, 'bid', 67, 100_000), order(4, 'bid', 68, 100_000), order(5, 'bid', 68, 100_000)];
    const c = clearRound([...offers, ...bids], CTX);
    expect(c.totals.unfilledWh).toBe(3);
    expect(bids.some((b) => filled(c, b)?.filledWh === b.qtyWh)).toBe(true);
    expect(new Set(c.fills.map((f) => f.market))).toEqual(new Set(['short']));
  });

  it('respects green-only bids, exclusions and allow-lists', () => {
    const brown = order(1, 'offer', 1_000, 100_000);
    const green = order(2, 'offer', 1_000, 110_000, { green: true });
    const greenOnly = order(3, 'bid', 1_500, 200_000, { green: true });
    const c = clearRound([brown, green, greenOnly], CTX);
    expect(c.trades.every((t) => t.green)).toBe(true);
    expect(filled(c, greenOnly)?.filledWh).toBe(1_000);

    const shunned = order(4, 'bid', 500, 200_000, { exclude: [anon(1)] });
    const picky = order(5, 'bid', 500, 200_000, { only: [anon(2)] });
    const c2 = clearRound([brown, green, shunned, picky], CTX);
    for (const t of c2.trades) expect(t.seller).toBe(anon(2));
    // An offer's exclusion binds the bidder too.
    const aloof = order(6, 'offer', 1_000, 100_000, { exclude: [anon(7)] });
    expect(clearRound([aloof, order(7, 'bid', 500, 200_000)], CTX).trades).toEqual([]);
    expect(mayMatch(aloof, order(7, 'bid', 1, 1))).toBe(false);
  });

  it('voids every order of an anonym with two in one round, and orders of other rounds or intervals', () => {
    const a1 = order(1, 'offer', 1_000, 100_000);
    const a2 = order(1, 'offer', 2_000, 100_000);
    const b = order(2, 'bid', 1_000, 100_000);
    const other = order(3, 'offer', 1_000, 100_000, { round: 2 });
    const elsewhere = order(4, 'offer', 1_000, 100_000, { interval: T + 3_600_000 });
    const c = clearRound([a1, a2, b, other, elsewhere, b], CTX);
    expect(c.trades).toEqual([]);
    expect(c.excluded.map((e) => e.reason).sort()).toEqual([
      'double-acceptance',
      'double-acceptance',
      'wrong-interval',
      'wrong-round',
    ]);
    expect(c.fills.map((f) => f.id)).toEqual([b.id]); // the repeated bid counts once
  });

  it('never accepts the same energy twice and never creates any (random books)', () => {
    const rand = seededRandom(7);
    for (let k = 0; k < 40; k++) {
      const orders = randomBook(rand, 4 + Math.floor(rand() * 30));
      const c = clearRound(orders, CTX);
      const sold = new Map<string, number>();
      const bought = new Map<string, number>();
      for (const t of c.trades) {
        sold.set(t.offer, (sold.get(t.offer) ?? 0) + t.qtyWh);
        bought.set(t.bid, (bought.get(t.bid) ?? 0) + t.qtyWh);
        const offer = orders.find((o) => o.id === t.offer) as Order;
        const bid = orders.find((o) => o.id === t.bid) as Order;
        expect(t.qtyWh).toBeGreaterThan(0);
        expect(t.price).toBe(offer.price);
        expect(bid.price).toBeGreaterThanOrEqual(offer.price);
        expect(mayMatch(offer, bid)).toBe(true);
      }
      for (const o of orders) {
        const traded = (o.side === 'offer' ? sold : bought).get(o.id) ?? 0;
        expect(traded).toBeLessThanOrEqual(o.qtyWh);
        expect(filled(c, o)?.filledWh).toBe(traded);
      }
      // Nothing left that could still trade: every eligible pair has one side exhausted.
      for (const o of orders.filter((x) => x.side === 'offer')) {
        for (const b of orders.filter((x) => x.side === 'bid')) {
          if (b.price < o.price || !mayMatch(o, b)) continue;
          const oLeft = o.qtyWh - (filled(c, o)?.filledWh ?? 0);
          const bLeft = b.qtyWh - (filled(c, b)?.filledWh ?? 0);
          expect(Math.min(oLeft, bLeft)).toBe(0);
        }
      }
    }
  });

  it('gives identical bytes for the same orders in any arrival order', () => {
    const rand = seededRandom(11);
    for (let k = 0; k < 10; k++) {
      const orders = randomBook(rand, 25);
      // Compared as text: the bytes are UTF-8 of canonical JSON, and strings compare fast.
      const text = (c: RoundClearing) => Buffer.from(encodeClearing(c)).toString('utf8');
      const reference = text(clearRound(orders, CTX));
      for (let p = 0; p < 5; p++) {
        expect(text(clearRound(shuffled(orders, rand), CTX)) === reference).toBe(true);
      }
    }
  });

  it('cuts a level where everyone may trade with everyone into at most n + m - 1 trades', () => {
    const offers = Array.from({ length: 10 }, (_, i) => order(i + 1, 'offer', 1_000 + i * 37, 100_000));
    const bids = Array.from({ length: 12 }, (_, i) => order(i + 20, 'bid', 900 + i * 53, 100_000));
    const c = clearRound([...offers, ...bids], CTX);
    expect(c.trades.length).toBeLessThanOrEqual(offers.length + bids.length - 1);
    expect(c.totals.tradedWh).toBe(Math.min(c.totals.offeredWh, c.totals.askedWh));
  });

  it('trade ids are unique, content-derived and change with the content', () => {
    const o = order(1, 'offer', 5_000, 150_000);
    const b = order(2, 'bid', 3_000, 160_000);
    const c1 = clearRound([o, b], CTX);
    const c2 = clearRound([o, b], { ...CTX, round: 1 });
    expect(c1.trades[0]?.id).toBe(c2.trades[0]?.id);
    expect(c1.trades[0]?.id).toMatch(/^0x[0-9a-f]{64}$/);
    const c3 = clearRound([o, order(2, 'bid', 3_001, 160_000)], CTX);
    expect(c3.trades[0]?.id).not.toBe(c1.trades[0]?.id);
  });
});

describe('verifyClearing', () => {
  const orders = randomBook(seededRandom(3), 20);
  const honest = clearRound(orders, CTX);

  it('accepts the recomputed clearing', () => {
    expect(verifyClearing(orders, CTX, honest)).toEqual({ ok: true });
    expect(clearingHash(honest)).toBe(clearingHash(clearRound([...orders].reverse(), CTX)));
  });

  it('names a trade that does not follow from the orders', () => {
    const first = honest.trades[0];
    expect(first).toBeDefined();
    const tampered = { ...honest, trades: [{ ...(first as (typeof honest.trades)[0]), id: `0x${'0'.repeat(64)}` }] };
    const v = verifyClearing(orders, CTX, tampered);
    expect(v.ok).toBe(false);
    expect(!v.ok && v.detail).toMatch(/does not follow from the round's orders/);
  });
});

describe('apportion', () => {
  it('splits exactly, by largest remainder, ties to the smaller key', () => {
    expect(apportion(10, [1, 1, 1], ['c', 'a', 'b'])).toEqual([3, 4, 3]);
    expect(apportion(50, [60, 40], ['x', 'y'])).toEqual([30, 20]);
    expect(apportion(0, [5, 5], ['a', 'b'])).toEqual([0, 0]);
    const big = apportion(2 ** 52, [2 ** 52 - 1, 3, 7], ['a', 'b', 'c']);
    expect(big.reduce((s, x) => s + x, 0)).toBe(2 ** 52);
  });
});
