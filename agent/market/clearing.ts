/**
 * The clearing of one bargaining round: a deterministic function of that round's orders, so every MGMC and the DSO
 * recompute it from the same signed orders and get identical bytes (encodeClearing). docs/market.md, "Clearing".
 *
 * Rules, in order:
 * 1. Orders for another interval or round are left out; the same id twice counts once; an anonym with two different
 *    orders in the round has all of them voided (`double-acceptance`): which one came first is not something every
 *    node agrees on, so neither counts.
 * 2. Pay as offered, cheapest first: offers are taken in price levels from the lowest price up. A bid takes part in a
 *    level when its price is at least the level's and it may trade with one of the level's offers (green-only bids
 *    only with green offers; `exclude` and `only` of both sides).
 * 3. Within a level, allocation is pro rata: each bid asks its eligible offers for its remaining quantity in
 *    proportion to what they have left; an offer asked for more than it has rations its askers in proportion to what
 *    they asked. Bids still short ask again among the offers with energy left, until no energy or no eligible demand
 *    is left (each pass empties at least one offer, so at most one pass per offer). Integer Wh are apportioned by
 *    largest remainder, ties broken by order id: no Wh is created, lost or accepted twice.
 * 4. When every offer and bid that met in a level may trade with each other, the pairs are re-cut as a staircase
 *    (offers and bids in id order) with the same quantity per order, so n offers and m bids give at most n + m - 1
 *    trades instead of n·m. The quantity each order trades is unchanged.
 * 5. Trades are at the offer's price. Each trade's id is the SHA-256 of its canonical content (tag mgmc/trade/v1).
 *
 * Alongside the trades, each order's fill: how much it traded and what was left on the other side that it could have
 * traded with (for an offer, unmet demand of bids at or above its price: it is oversubscribed; for a bid, unsold
 * supply at or below its price). These are the signals the bargaining strategy answers (bargaining.ts).
 */
import { createHash } from 'node:crypto';
import { utf8 } from '../identity/bytes.js';
import type { Address } from '../identity/keys.js';
import { type CanonicalValue, canonicalBytes } from '../ledger/canonical.js';
import type { Order, Side } from './order.js';

export const TRADE_TAG = 'mgmc/trade/v1';

export interface Trade {
  /** 0x-hex SHA-256 of TRADE_TAG ‖ 0x00 ‖ canonical {interval, round, offer, bid, qtyWh, price}. */
  readonly id: string;
  readonly interval: number;
  readonly round: number;
  readonly seller: Address;
  readonly buyer: Address;
  /** Id of the offer. */
  readonly offer: string;
  /** Id of the bid. */
  readonly bid: string;
  readonly qtyWh: number;
  /** The offer's price, micro-units per kWh. */
  readonly price: number;
  /** The offer's green flag. */
  readonly green: boolean;
}

export interface OrderFill {
  readonly id: string;
  readonly anonym: Address;
  readonly side: Side;
  readonly price: number;
  readonly qtyWh: number;
  readonly filledWh: number;
  /**
   * What was left on the other side that this order could have traded with, after the clearing. Offer: Wh still
   * wanted by eligible bids at or above its price (sold out with residual demand: oversubscribed). Bid: Wh still
   * unsold by eligible offers at or below its price (filled with residual supply: the price is above clearing).
   */
  readonly residualWh: number;
  /**
   * The market around the order after the clearing. Offer: `short` when eligible bids at or above its price are left
   * unfilled; `long` when it, or an offer its eligible bidders could still buy from, is left unsold. Bid: `short` when
   * it, or a bid competing for its eligible offers, is left unfilled; `long` when eligible offers at or below its
   * price are left unsold. Read from whole neighbourhoods rather than the order's own integer fill, so that orders at
   * one price get one answer even when largest-remainder rounding fills one of them exactly. Otherwise `balanced`.
   */
  readonly market: 'short' | 'long' | 'balanced';
}

export type ExclusionReason = 'double-acceptance' | 'wrong-interval' | 'wrong-round';

export interface ExcludedOrder {
  readonly id: string;
  readonly anonym: Address;
  readonly reason: ExclusionReason;
}

export interface ClearingContext {
  readonly interval: number;
  readonly round: number;
}

export interface ClearingTotals {
  readonly offeredWh: number;
  readonly askedWh: number;
  readonly tradedWh: number;
  /** Offered but not sold. */
  readonly unsoldWh: number;
  /** Asked but not bought. */
  readonly unfilledWh: number;
}

export interface RoundClearing {
  readonly interval: number;
  readonly round: number;
  /** Sorted by id. */
  readonly trades: readonly Trade[];
  /** One per counted order, sorted by id. */
  readonly fills: readonly OrderFill[];
  /** Sorted by id. */
  readonly excluded: readonly ExcludedOrder[];
  readonly totals: ClearingTotals;
}

interface Entry {
  readonly order: Order;
  readonly key: string;
  readonly exclude: ReadonlySet<string> | undefined;
  readonly only: ReadonlySet<string> | undefined;
  left: number;
}

/**
 * Clears one round. Pure and deterministic: the result depends only on the set of orders, not on their order. The
 * orders are taken as admitted (checkOrder / OrderBook: signed, and each id the digest of its content).
 */
export function clearRound(orders: readonly Order[], context: ClearingContext): RoundClearing {
  const excludedById = new Map<string, ExcludedOrder>();
  const unique = new Map<string, Order>();
  for (const o of orders) {
    if (o.interval !== context.interval)
      excludedById.set(o.id, { id: o.id, anonym: o.anonym, reason: 'wrong-interval' });
    else if (o.round !== context.round) excludedById.set(o.id, { id: o.id, anonym: o.anonym, reason: 'wrong-round' });
    else unique.set(o.id, o);
  }
  const excluded = [...excludedById.values()];
  const perAnonym = new Map<string, Order[]>();
  for (const o of unique.values()) {
    const key = o.anonym.toLowerCase();
    const list = perAnonym.get(key);
    if (list === undefined) perAnonym.set(key, [o]);
    else list.push(o);
  }
  const offers: Entry[] = [];
  const bids: Entry[] = [];
  for (const [key, list] of perAnonym) {
    if (list.length > 1) {
      for (const o of list) excluded.push({ id: o.id, anonym: o.anonym, reason: 'double-acceptance' });
      continue;
    }
    const order = list[0] as Order;
    const entry: Entry = {
      order,
      key,
      exclude: order.exclude ? new Set(order.exclude.map((a) => a.toLowerCase())) : undefined,
      only: order.only ? new Set(order.only.map((a) => a.toLowerCase())) : undefined,
      left: order.qtyWh,
    };
    (order.side === 'offer' ? offers : bids).push(entry);
  }
  offers.sort((a, b) => a.order.price - b.order.price || compareIds(a.order.id, b.order.id));
  bids.sort((a, b) => compareIds(a.order.id, b.order.id));

  const pairs = new Map<Entry, Map<Entry, number>>();
  const addFlow = (o: Entry, b: Entry, q: number) => {
    if (q <= 0) return;
    let row = pairs.get(o);
    if (row === undefined) {
      row = new Map();
      pairs.set(o, row);
    }
    row.set(b, (row.get(b) ?? 0) + q);
    o.left -= q;
    b.left -= q;
  };

  for (let start = 0; start < offers.length; ) {
    const price = (offers[start] as Entry).order.price;
    let end = start;
    while (end < offers.length && (offers[end] as Entry).order.price === price) end++;
    const level = offers.slice(start, end);
    start = end;
    const levelBids = bids.filter((b) => b.order.price >= price && level.some((o) => eligible(o, b)));
    const levelFlows = new Map<Entry, Map<Entry, number>>();
    const before = new Map<Entry, number>([...level, ...levelBids].map((e) => [e, e.left]));
    for (;;) {
      const asks = new Map<Entry, Map<Entry, number>>();
      for (const b of levelBids) {
        if (b.left <= 0) continue;
        const targets = level.filter((o) => o.left > 0 && eligible(o, b));
        if (targets.length === 0) continue;
        const split = apportion(
          b.left,
          targets.map((o) => o.left),
          targets.map((o) => o.order.id),
        );
        targets.forEach((o, i) => {
          const q = split[i] as number;
          if (q <= 0) return;
          let row = asks.get(o);
          if (row === undefined) {
            row = new Map();
            asks.set(o, row);
          }
          row.set(b, q);
        });
      }
      if (asks.size === 0) break;
      let granted = 0;
      for (const o of level) {
        const row = asks.get(o);
        if (row === undefined) continue;
        const askers = [...row.keys()];
        const wanted = askers.map((b) => row.get(b) as number);
        const total = wanted.reduce((s, q) => s + q, 0);
        const grants =
          total <= o.left
            ? wanted
            : apportion(
                o.left,
                wanted,
                askers.map((b) => b.order.id),
              );
        askers.forEach((b, i) => {
          const q = grants[i] as number;
          if (q <= 0) return;
          let flows = levelFlows.get(o);
          if (flows === undefined) {
            flows = new Map();
            levelFlows.set(o, flows);
          }
          flows.set(b, (flows.get(b) ?? 0) + q);
          o.left -= q;
          b.left -= q;
          granted += q;
        });
      }
      if (granted === 0) break;
    }
    // Undo the level's bookkeeping and write its flows, re-cut as a staircase when every pair may trade.
    for (const [e, left] of before) e.left = left;
    const sellers = level.filter((o) => levelFlows.has(o));
    const buyers = levelBids.filter((b) => sellers.some((o) => levelFlows.get(o)?.has(b)));
    const complete = sellers.every((o) => buyers.every((b) => eligible(o, b)));
    if (complete) {
      const sold = sellers.map((o) => sum(levelFlows.get(o) as Map<Entry, number>));
      const bought = buyers.map((b) => sellers.reduce((s, o) => s + (levelFlows.get(o)?.get(b) ?? 0), 0));
      let j = 0;
      for (let i = 0; i < sellers.length; i++) {
        while ((sold[i] as number) > 0) {
          const take = Math.min(sold[i] as number, bought[j] as number);
          addFlow(sellers[i] as Entry, buyers[j] as Entry, take);
          sold[i] = (sold[i] as number) - take;
          bought[j] = (bought[j] as number) - take;
          if (bought[j] === 0) j++;
        }
      }
    } else {
      for (const [o, flows] of levelFlows) for (const [b, q] of flows) addFlow(o, b, q);
    }
  }

  const trades: Trade[] = [];
  for (const [o, row] of pairs) {
    for (const [b, qtyWh] of row) {
      const content = {
        interval: context.interval,
        round: context.round,
        offer: o.order.id,
        bid: b.order.id,
        qtyWh,
        price: o.order.price,
      };
      trades.push({
        id: tradeId(content),
        interval: context.interval,
        round: context.round,
        seller: o.order.anonym,
        buyer: b.order.anonym,
        offer: o.order.id,
        bid: b.order.id,
        qtyWh,
        price: o.order.price,
        green: o.order.green,
      });
    }
  }
  trades.sort((a, b) => compareIds(a.id, b.id));

  // Residuals first (what is left across each order's eligible pairs), then each order's market from its own and
  // its neighbours' residuals. The water-filling leaves no eligible pair with energy on both sides, so an offer with
  // Wh unsold has no residual demand and a bid left short has no residual supply.
  const residualDemand = new Map<Entry, number>();
  const residualSupply = new Map<Entry, number>();
  for (const o of offers) {
    let r = 0;
    for (const b of bids) if (b.left > 0 && b.order.price >= o.order.price && eligible(o, b)) r += b.left;
    residualDemand.set(o, r);
  }
  for (const b of bids) {
    let r = 0;
    for (const o of offers) if (o.left > 0 && o.order.price <= b.order.price && eligible(o, b)) r += o.left;
    residualSupply.set(b, r);
  }
  const fills: OrderFill[] = [];
  for (const o of offers) {
    const demand = residualDemand.get(o) as number;
    let market: OrderFill['market'] = demand > 0 ? 'short' : o.left > 0 ? 'long' : 'balanced';
    if (market === 'balanced') {
      const longNeighbour = bids.some(
        (b) => (residualSupply.get(b) as number) > 0 && b.order.price >= o.order.price && eligible(o, b),
      );
      if (longNeighbour) market = 'long';
    }
    fills.push(fillOf(o, demand, market));
  }
  for (const b of bids) {
    const supply = residualSupply.get(b) as number;
    let market: OrderFill['market'] = b.left > 0 ? 'short' : supply > 0 ? 'long' : 'balanced';
    if (market === 'balanced') {
      const shortNeighbour = offers.some(
        (o) => (residualDemand.get(o) as number) > 0 && o.order.price <= b.order.price && eligible(o, b),
      );
      if (shortNeighbour) market = 'short';
    }
    fills.push(fillOf(b, supply, market));
  }
  fills.sort((a, b) => compareIds(a.id, b.id));
  excluded.sort((a, b) => compareIds(a.id, b.id));

  const offeredWh = offers.reduce((s, e) => s + e.order.qtyWh, 0);
  const askedWh = bids.reduce((s, e) => s + e.order.qtyWh, 0);
  const tradedWh = trades.reduce((s, t) => s + t.qtyWh, 0);
  return {
    interval: context.interval,
    round: context.round,
    trades,
    fills,
    excluded,
    totals: { offeredWh, askedWh, tradedWh, unsoldWh: offeredWh - tradedWh, unfilledWh: askedWh - tradedWh },
  };
}

/** Id of a trade: SHA-256 of TRADE_TAG ‖ 0x00 ‖ canonical content. */
export function tradeId(content: {
  readonly interval: number;
  readonly round: number;
  readonly offer: string;
  readonly bid: string;
  readonly qtyWh: number;
  readonly price: number;
}): string {
  const hash = createHash('sha256');
  hash.update(utf8(TRADE_TAG));
  hash.update(new Uint8Array([0]));
  hash.update(canonicalBytes(content));
  return `0x${hash.digest('hex')}`;
}

/** Canonical bytes of a clearing: what two nodes compare. */
export function encodeClearing(clearing: RoundClearing): Uint8Array {
  return canonicalBytes(clearing as unknown as CanonicalValue);
}

/** 0x-hex SHA-256 of encodeClearing: a short handle to compare and sign. */
export function clearingHash(clearing: RoundClearing): string {
  return `0x${createHash('sha256').update(encodeClearing(clearing)).digest('hex')}`;
}

export type ClearingVerdict = { readonly ok: true } | { readonly ok: false; readonly detail: string };

/**
 * Recomputes the clearing of `orders` and compares it with `claimed` (what another node published or stored). On a
 * difference, names the first trade that differs.
 */
export function verifyClearing(
  orders: readonly Order[],
  context: ClearingContext,
  claimed: RoundClearing,
): ClearingVerdict {
  const mine = clearRound(orders, context);
  if (clearingHash(mine) === clearingHash(claimed)) return { ok: true };
  const theirs = new Map(claimed.trades.map((t) => [t.id, t]));
  const ours = new Map(mine.trades.map((t) => [t.id, t]));
  const extra = claimed.trades.find((t) => !ours.has(t.id));
  if (extra !== undefined) {
    return {
      ok: false,
      detail: `trade ${extra.id} (${extra.seller} -> ${extra.buyer}, ${extra.qtyWh} Wh at ${extra.price}) does not follow from the round's orders`,
    };
  }
  const missing = mine.trades.find((t) => !theirs.has(t.id));
  if (missing !== undefined) {
    return { ok: false, detail: `trade ${missing.id} (${missing.seller} -> ${missing.buyer}) is missing` };
  }
  return { ok: false, detail: 'the trades agree but fills, exclusions or totals differ' };
}

function fillOf(e: Entry, residualWh: number, market: OrderFill['market']): OrderFill {
  return {
    id: e.order.id,
    anonym: e.order.anonym,
    side: e.order.side,
    price: e.order.price,
    qtyWh: e.order.qtyWh,
    filledWh: e.order.qtyWh - e.left,
    residualWh,
    market,
  };
}

type EligibilityFields = Pick<Order, 'anonym' | 'green' | 'exclude' | 'only'>;

/**
 * Whether `offer` and `bid` may be matched by their own fields, price aside: different anonyms, a green-only bid
 * only with a green offer, neither excluding the other, each in the other's `only` list when it has one. The rule
 * clearRound applies, for a bidder choosing which offers it favours.
 */
export function mayMatch(offer: EligibilityFields, bid: EligibilityFields): boolean {
  const set = (list: readonly string[] | undefined) => (list ? new Set(list.map((a) => a.toLowerCase())) : undefined);
  return eligible(
    {
      order: offer as Order,
      key: offer.anonym.toLowerCase(),
      exclude: set(offer.exclude),
      only: set(offer.only),
      left: 0,
    },
    { order: bid as Order, key: bid.anonym.toLowerCase(), exclude: set(bid.exclude), only: set(bid.only), left: 0 },
  );
}

/** Whether offer `o` and bid `b` may trade, by their own fields (price aside). */
function eligible(o: Entry, b: Entry): boolean {
  if (o.key === b.key) return false;
  if (b.order.green && !o.order.green) return false;
  if (o.exclude?.has(b.key) || b.exclude?.has(o.key)) return false;
  if (o.only !== undefined && !o.only.has(b.key)) return false;
  if (b.only !== undefined && !b.only.has(o.key)) return false;
  return true;
}

function sum(row: ReadonlyMap<Entry, number>): number {
  let s = 0;
  for (const q of row.values()) s += q;
  return s;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Splits the integer `total` in proportion to `weights` (largest remainder; ties to the smaller key). Exact: the
 * products are taken in BigInt, so quantities up to 2^53 never round differently on another platform.
 */
export function apportion(total: number, weights: readonly number[], keys: readonly string[]): number[] {
  const sumW = weights.reduce((s, w) => s + w, 0);
  if (sumW <= 0 || total <= 0) return weights.map(() => 0);
  const T = BigInt(total);
  const W = BigInt(sumW);
  const base: number[] = [];
  const rest: { i: number; r: bigint }[] = [];
  let given = 0;
  weights.forEach((w, i) => {
    const p = T * BigInt(w);
    const q = p / W;
    base.push(Number(q));
    given += Number(q);
    rest.push({ i, r: p % W });
  });
  rest.sort((a, b) => (a.r > b.r ? -1 : a.r < b.r ? 1 : compareIds(keys[a.i] as string, keys[b.i] as string)));
  for (let k = 0; k < total - given; k++) {
    const slot = rest[k % rest.length] as { i: number };
    base[slot.i] = (base[slot.i] as number) + 1;
  }
  return base;
}
