/**
 * The bargaining of one market interval: a multi-leader, multi-follower Stackelberg game played in rounds, as a pure
 * state machine (no clock, no I/O). docs/market.md, "Bargaining", says the same for people.
 *
 * Every MGMC keeps one price p (everyone starts at the middle of the grid band). Each round r:
 *   1. Leaders: every MGMC whose curve has a surplus at p publishes an offer: price p (raised to its floor),
 *      quantity = its curve at that price.
 *   2. Followers: every MGMC with a deficit at p publishes a bid, having seen the round's offers: price p (lowered to
 *      its ceiling), quantity = what its curve buys at that price. Which offers it favours is carried by the bid: the
 *      clearing serves it from the cheapest offers first and only from offers both sides' rules accept (green only,
 *      denied or allowed anonyms). A follower left short last round takes a leader's higher price: an offer at most
 *      acceptWithin above p, or the cheapest offer above p when its remaining steps could carry it that far anyway;
 *      it then asks its curve's quantity there (but not less than it got cheaper last round).
 *   3. The round is cleared (clearing.ts): a deterministic function of the round's orders.
 *   4. Everyone answers the clearing by moving p by that round's step s_r, by the market around its order
 *      (clearing.ts OrderFill.market):
 *        offer  sold out and eligible bids at or above its price left unfilled (oversubscribed) -> up
 *        offer  partly unsold (undersold), or a competing offer its bidders could buy is        -> down
 *        bid    left short, or a bid competing for its offers is                                -> up
 *        bid    filled and eligible offers at or below its price left unsold                    -> down
 *        no order this round (nothing to trade at p): up if the round left more demand unfilled than supply unsold,
 *        down if the reverse
 *        otherwise                                                                              -> hold
 *      and p stays in the grid band [exportPrice, importPrice]. A seller's offer never goes below its floor and a
 *      buyer's bid never above its ceiling, but p itself may (a battery priced out as a seller can become a buyer).
 *   5. Once the steps have run out, settling rounds: a bid left short takes the price of the cheapest offer above it
 *      that it may buy from (any distance, within its ceiling); nobody else moves.
 * The bargaining ends at the first round in which nobody's price changes (stable) or at the round cap; the last
 * round's trades stand and each MGMC meets what is left with the grid at grid prices.
 *
 * Parameters (BargainingParams; public, the same for everyone): s_1 = a quarter of the band,
 * s_{r+1} = floor(s_r · 3 / 5), a step below minStep (default band / 2048, about 0.05 % of it) is 0; acceptWithin
 * a thousandth of the band; round cap 30.
 *
 * Why it converges, and to what:
 * - It stops: the steps fall geometrically and reach 0 after log(band/4 / minStep) / log(5/3) rounds (13 with the
 *   defaults, whatever the band); then only short bids move, and only up, through the finite set of offer prices,
 *   so the settling rounds end too (in practice in one). The round cap bounds everything.
 * - Where it stops: while all prices are equal there is one price level, and pro-rata allocation hands every seller
 *   the same answer (all sold out with demand left, or all partly unsold) and every buyer the matching one, read from
 *   the whole level rather than its own integer fill; MGMCs without an order read the same from the totals. So all
 *   prices move together: the market does a bisection on one price p against the aggregate excess demand
 *   D(p) - S(p), which never increases with p because no curve's netWh decreases with price. The steps still to come
 *   add up to 1.5 times the current one (ratio 3/5), so a step that overshoots is undone, and p ends within about
 *   two minimum steps of the clearing price p*, where supply meets demand: the welfare optimum (welfare.ts). The
 *   benchmark measures the gap: at most 0.03 % at the defaults, 5 to 100 MGMCs.
 * - Rules split prices: a green-only buyer competes for green offers only, a seller is held at its floor. Groups
 *   then follow their own signals with the same shrinking steps; the follower rule lets a short buyer reach the
 *   group above it, and settling closes splits left by the last steps, so the process still stops by the same
 *   round. With 30 % green-only buyers the gap stayed under 2 % (against an upper bound); with sellers' floors spread
 *   over the band, early splits keep their offsets and the gap can reach several % (docs/market.md, a known limit).
 * Monotone prices (sellers only down, buyers only up) converge too, but to within one fixed step: 1 % of the band
 * takes 100 rounds; shrinking steps get ~0.05 % in 13.
 */
import type { Address } from '../identity/keys.js';
import type { Signer } from '../ledger/block.js';
import { clearRound, mayMatch, type OrderFill, type RoundClearing, type Trade } from './clearing.js';
import { type GridPrices, netAt, netWhAt, type PriceResponseCurve } from './curve.js';
import { buildOrder, type MarketLimits, type Order, type OrderFields, type Side, signOrder } from './order.js';
import { type ContractRules, checkCounterOrder, checkOwnOrder, ruleFields, rulePrice } from './rules.js';

export interface BargainingParams {
  /** Last round (the market's cap; an MGMC's own rules may stop it earlier). */
  readonly roundCap: number;
  /** Everyone's first price; default the middle of the band. */
  readonly initialPrice?: number;
  /** First step (micro-units per kWh); default a quarter of the band, at least minStep. */
  readonly initialStep?: number;
  /** Step decay per round: next = floor(step · decayNum / decayDen). */
  readonly decayNum: number;
  readonly decayDen: number;
  /** Steps smaller than this are 0 (micro-units per kWh); default band / 2048, at least 1. */
  readonly minStep?: number;
  /**
   * A follower takes a leader's price that is at most this far above its own (micro-units per kWh); default a
   * thousandth of the band, at least minStep. Prices of groups that split in the last rounds (a green-only buyer's
   * signal differs from its neighbours') then still meet when the steps have run out.
   */
  readonly acceptWithin?: number;
}

export const DEFAULT_BARGAINING: BargainingParams = Object.freeze({
  roundCap: 30,
  decayNum: 3,
  decayDen: 5,
});

/** The market of one interval, as every participant knows it. */
export interface MarketSetup {
  readonly chainId: number;
  readonly interval: number;
  readonly grid: GridPrices;
  /** Orders expire at the gate closure. */
  readonly gateClosure: number;
  readonly params: BargainingParams;
  /** Largest order of the market (Wh); none when absent. */
  readonly maxQtyWh?: number;
  /** The interval's bargaining attempt (1 when absent; again after DSO caps). */
  readonly attempt?: number;
}

export class BargainingError extends Error {
  override name = 'BargainingError';
}

/** The market limits every order must keep (order.ts), from the setup. */
export function marketLimits(setup: MarketSetup): MarketLimits {
  return {
    band: setup.grid,
    roundCap: setup.params.roundCap,
    ...(setup.maxQtyWh === undefined ? {} : { maxQtyWh: setup.maxQtyWh }),
  };
}

/** The first price of every participant. */
export function initialPrice(setup: MarketSetup): number {
  const { importPrice, exportPrice } = setup.grid;
  const p = setup.params.initialPrice ?? Math.floor((importPrice + exportPrice) / 2);
  return Math.min(importPrice, Math.max(exportPrice, p));
}

/** The smallest step (BargainingParams.minStep). */
export function minStep(setup: MarketSetup): number {
  const { params, grid } = setup;
  return params.minStep ?? Math.max(1, Math.round((grid.importPrice - grid.exportPrice) / 2048));
}

/** The step taken after round `round`'s clearing (0 once the schedule has run out). */
export function stepSize(setup: MarketSetup, round: number): number {
  const { params, grid } = setup;
  const least = minStep(setup);
  let step = params.initialStep ?? Math.max(least, Math.ceil((grid.importPrice - grid.exportPrice) / 4));
  for (let r = 1; r < round && step > 0; r++) {
    step = Math.floor((step * params.decayNum) / params.decayDen);
    if (step < least) step = 0;
  }
  return step < least ? 0 : step;
}

/** How far a price can still move from round `round` on: the sum of the steps taken after it and later rounds. */
export function remainingTravel(setup: MarketSetup, round: number): number {
  let total = 0;
  for (let r = round; r <= setup.params.roundCap; r++) {
    const step = stepSize(setup, r);
    if (step === 0) break;
    total += step;
  }
  return total;
}

/** How far above its own price a follower takes a leader's price (BargainingParams.acceptWithin). */
export function acceptWithin(setup: MarketSetup): number {
  const { params, grid } = setup;
  return params.acceptWithin ?? Math.max(minStep(setup), Math.ceil((grid.importPrice - grid.exportPrice) / 1000));
}

/** Checks the setup's numbers; throws a BargainingError saying which one is wrong. */
export function checkSetup(setup: MarketSetup): void {
  const { params, grid } = setup;
  const int = (v: number | undefined, min: number) => v === undefined || (Number.isSafeInteger(v) && v >= min);
  if (!int(params.roundCap, 1)) throw new BargainingError(`roundCap must be an integer >= 1, got ${params.roundCap}`);
  if (!int(params.minStep, 1)) throw new BargainingError(`minStep must be an integer >= 1, got ${params.minStep}`);
  if (!int(params.initialStep, 0)) throw new BargainingError('initialStep must be an integer >= 0');
  if (!int(params.initialPrice, 0)) throw new BargainingError('initialPrice must be an integer >= 0');
  if (!int(params.acceptWithin, 0)) throw new BargainingError('acceptWithin must be an integer >= 0');
  if (!int(params.decayNum, 0) || !int(params.decayDen, 1) || params.decayNum >= params.decayDen) {
    throw new BargainingError(
      `step decay ${params.decayNum}/${params.decayDen} must be a fraction below 1 (integers), or steps never shrink`,
    );
  }
  if (!(grid.exportPrice <= grid.importPrice)) {
    throw new BargainingError(`feed-in price ${grid.exportPrice} is above the import price ${grid.importPrice}`);
  }
}

export type Move = 'up' | 'down' | 'hold';

/** One MGMC in the bargaining. */
export interface BargainingParticipant {
  readonly anonym: Address;
  /** Its curve for this interval (normalized). */
  readonly curve: PriceResponseCurve;
  readonly rules?: ContractRules;
  /** Whether the energy it sells is green. */
  readonly green?: boolean;
  /** Signs its orders (the anonym key); unsigned orders when absent (simulation). */
  readonly signer?: Signer;
}

/**
 * One MGMC's side of the bargaining of one interval: what it proposes each round and how it answers a clearing.
 * Pure: the same curve, rules and clearings give the same orders.
 */
export class Bargainer {
  private current: number;
  /** Its price when it last answered a clearing (to tell whether it changed since). */
  private settled: number;
  private lastId: string | undefined;
  private lastSide: Side | undefined;
  /** How the market around its last order looked (undefined when it had none). */
  private lastMarket: OrderFill['market'] | undefined;
  /** Wh its last order traded. */
  private lastFilled = 0;
  /** Wh its next bid asks for at least (what it got cheaper before taking a dearer leader's price). */
  private keepWh = 0;
  private readonly rules: ContractRules;
  private readonly cap: number;

  constructor(
    readonly participant: BargainingParticipant,
    readonly setup: MarketSetup,
  ) {
    checkSetup(setup);
    if (participant.curve.interval !== setup.interval) {
      throw new BargainingError(
        `${participant.anonym}: curve is for interval ${participant.curve.interval}, the market trades ${setup.interval}`,
      );
    }
    if (participant.signer !== undefined && participant.signer.address !== participant.anonym) {
      throw new BargainingError(`${participant.anonym}: the signer is ${participant.signer.address}`);
    }
    this.rules = participant.rules ?? {};
    this.cap = Math.min(setup.params.roundCap, this.rules.roundCap ?? Number.POSITIVE_INFINITY);
    this.current = initialPrice(setup);
    this.settled = this.current;
  }

  get anonym(): Address {
    return this.participant.anonym;
  }

  /** Its bargaining price now. */
  get price(): number {
    return this.current;
  }

  /** The side its curve puts it on at its current price, or undefined when it has nothing to trade there. */
  side(): Side | undefined {
    const net = netWhAt(this.participant.curve, this.current);
    return net > 0 ? 'offer' : net < 0 ? 'bid' : undefined;
  }

  /**
   * The order it publishes in `round`, or undefined when it has nothing to trade at its price. Offers come from
   * leaders (surplus), bids from followers (deficit); both are checked against its rules before they leave.
   */
  proposal(round: number, offers: readonly Order[] = []): Order | undefined {
    if (this.side() === 'bid') {
      const taken = this.followerPrice(this.current, offers, round);
      if (taken > this.current) this.adopt(taken);
    }
    const keep = this.keepWh;
    this.keepWh = 0;
    const side = this.side();
    if (side === undefined) {
      this.lastSide = undefined;
      return undefined;
    }
    const price = rulePrice(this.rules, side, this.current);
    const net = netWhAt(this.participant.curve, price);
    let qtyWh = side === 'offer' ? Math.max(0, net) : Math.max(0, -net, keep);
    const caps = [this.rules.maxQtyWh, this.setup.maxQtyWh].filter((c): c is number => c !== undefined);
    for (const c of caps) qtyWh = Math.min(qtyWh, c);
    if (qtyWh <= 0) {
      this.lastSide = undefined;
      return undefined;
    }
    const fields: OrderFields = {
      anonym: this.anonym,
      interval: this.setup.interval,
      side,
      qtyWh,
      price,
      round,
      expiry: this.setup.gateClosure,
      ...ruleFields(this.rules, side, this.participant.green === true),
      ...(this.lastId === undefined ? {} : { prev: this.lastId }),
      ...((this.setup.attempt ?? 1) > 1 ? { attempt: this.setup.attempt } : {}),
    };
    const broken = checkOwnOrder(fields, this.rules);
    if (broken.length > 0) {
      throw new BargainingError(
        `${this.anonym}: own order breaks its rules: ${broken.map((b) => b.detail).join('; ')}`,
      );
    }
    const { signer } = this.participant;
    const order = signer ? signOrder(fields, signer, this.setup.chainId) : buildOrder(fields, this.setup.chainId);
    this.lastId = order.id;
    this.lastSide = side;
    return order;
  }

  /**
   * The follower's answer to the leaders' offers. When it was left short last round, it raises its price to offers it
   * may buy from above its own: to the highest within acceptWithin (prices that split by a last step still meet), and
   * to the cheapest above, when that is within the distance its own remaining steps could still carry it (the energy
   * it lacked is there, at a price it would reach anyway; a farther one, such as a seller held at a high floor, it
   * does not chase). It then asks its curve's quantity at that price. Otherwise it bids at its own price.
   */
  private followerPrice(own: number, offers: readonly Order[], round: number): number {
    if (this.lastMarket !== 'short' || this.lastSide !== 'bid') return own;
    const { highestWithin, cheapest } = this.offersAbove(own, offers, acceptWithin(this.setup));
    const reach = cheapest <= own + remainingTravel(this.setup, round) ? cheapest : own;
    return Math.max(own, highestWithin, reach);
  }

  /** Offers it may buy from priced above `own`: the highest within `within` of it, and the cheapest (any distance). */
  private offersAbove(
    own: number,
    offers: readonly Order[],
    within: number,
  ): { highestWithin: number; cheapest: number } {
    const me = { anonym: this.anonym, ...ruleFields(this.rules, 'bid', false) };
    let highestWithin = own;
    let cheapest = Number.POSITIVE_INFINITY;
    for (const o of offers) {
      if (o.side !== 'offer' || o.price <= own) continue;
      if (!mayMatch(o, me) || checkCounterOrder(this.rules, 'bid', o) !== undefined) continue;
      if (o.price <= own + within && o.price > highestWithin) highestWithin = o.price;
      if (o.price < cheapest) cheapest = o.price;
    }
    return { highestWithin, cheapest };
  }

  /**
   * Takes a leader's price as its own. One bid has one quantity: reaching up for dearer energy must not give up what
   * it got cheaper last round (cheapest offers are served first), up to what it wanted at its old price.
   */
  private adopt(price: number): void {
    const wanted = -netWhAt(this.participant.curve, rulePrice(this.rules, 'bid', this.current));
    this.keepWh = Math.max(0, Math.min(this.lastFilled, wanted));
    this.current = price;
  }

  /**
   * Answers round `clearing.round`'s clearing (of `orders`, the round's orders): moves its price by that round's step
   * (see the module comment) and says how. 'hold' means its price did not change since it last answered.
   *
   * Once the steps have run out, the settling rule: a bidder left short takes the price of the cheapest offer above
   * its own that it may buy from (any distance, up to its ceiling); nobody else moves. Prices then only rise, through
   * a finite set of offer prices, so the settling ends, and no bid is left short below an offer it could take.
   */
  observe(clearing: RoundClearing, orders: readonly Order[] = []): Move {
    const want = this.direction(clearing);
    const before = this.settled;
    const moved = (): Move => {
      this.settled = this.current;
      return this.current > before ? 'up' : this.current < before ? 'down' : 'hold';
    };
    if (clearing.round >= this.cap) return moved();
    const step = stepSize(this.setup, clearing.round);
    if (step === 0) {
      if (this.lastSide === 'bid' && this.lastMarket === 'short') {
        const own = rulePrice(this.rules, 'bid', this.current);
        const { cheapest } = this.offersAbove(own, orders, 0);
        if (cheapest < Number.POSITIVE_INFINITY && rulePrice(this.rules, 'bid', cheapest) === cheapest) {
          this.adopt(cheapest);
        }
      }
      return moved();
    }
    if (want === 'hold') return moved();
    const { importPrice, exportPrice } = this.setup.grid;
    let next = want === 'up' ? this.current + step : this.current - step;
    next = Math.min(importPrice, Math.max(exportPrice, next));
    this.current = next;
    return moved();
  }

  private direction(clearing: RoundClearing): Move {
    const fill = this.lastId === undefined ? undefined : clearing.fills.find((f) => f.id === this.lastId);
    this.lastFilled = fill?.filledWh ?? 0;
    if (fill === undefined || this.lastSide === undefined) {
      this.lastMarket = undefined;
      const { unfilledWh, unsoldWh } = clearing.totals;
      return unfilledWh > unsoldWh ? 'up' : unsoldWh > unfilledWh ? 'down' : 'hold';
    }
    this.lastMarket = fill.market;
    return fill.market === 'short' ? 'up' : fill.market === 'long' ? 'down' : 'hold';
  }
}

/** Where one MGMC ends after the bargaining and the grid. */
export interface ParticipantOutcome {
  readonly anonym: Address;
  /** Its last bargaining price (when the outcome comes from a run). */
  readonly price?: number;
  /** P2P: sold - bought (Wh). */
  readonly p2pNetWh: number;
  /** Paid to it by P2P trades (micro-units; negative when it paid). */
  readonly p2pCashMicro: number;
  /** Its net position after meeting the rest with the grid (Wh, + = net supply), on its curve. */
  readonly positionWh: number;
  readonly gridImportWh: number;
  readonly gridExportWh: number;
}

export interface RoundSummary {
  readonly round: number;
  readonly orders: number;
  readonly tradedWh: number;
  readonly minPrice: number;
  readonly maxPrice: number;
  readonly changed: number;
}

export interface BargainingResult {
  readonly interval: number;
  /** Rounds played. */
  readonly rounds: number;
  /** True when it ended because nobody changed; false at the round cap. */
  readonly stable: boolean;
  /** The last round's clearing: the trades that stand. */
  readonly final: RoundClearing;
  readonly summaries: readonly RoundSummary[];
  /** Orders published over all rounds (one message each). */
  readonly messages: number;
  readonly outcomes: readonly ParticipantOutcome[];
  /** Every round's orders and clearing, when asked for (replay, tests). */
  readonly history?: readonly { readonly orders: readonly Order[]; readonly clearing: RoundClearing }[];
}

export interface RunOptions {
  /** Keep every round's orders and clearing in the result. */
  readonly keepHistory?: boolean;
  /** Called after each round's clearing (progress, logging). */
  readonly onRound?: (summary: RoundSummary, clearing: RoundClearing) => void;
}

/**
 * Plays the whole bargaining of one interval among `participants` in process: the simulation the tests and the
 * benchmark run, and the reference the message-driven market must agree with.
 */
export function runBargaining(
  participants: readonly BargainingParticipant[],
  setup: MarketSetup,
  options: RunOptions = {},
): BargainingResult {
  const seen = new Set<string>();
  for (const p of participants) {
    const key = p.anonym.toLowerCase();
    if (seen.has(key)) throw new BargainingError(`anonym ${p.anonym} takes part twice`);
    seen.add(key);
  }
  const agents = participants.map((p) => new Bargainer(p, setup));
  const summaries: RoundSummary[] = [];
  const history: { orders: Order[]; clearing: RoundClearing }[] = [];
  let messages = 0;
  let final: RoundClearing | undefined;
  let stable = false;
  let round = 0;
  while (round < setup.params.roundCap) {
    round++;
    const prices = agents.map((a) => a.price);
    // Leaders first, then followers; the clearing does not depend on the order they are listed in.
    const offers: Order[] = [];
    const bids: Order[] = [];
    for (const a of agents) if (a.side() === 'offer') pushDefined(offers, a.proposal(round));
    for (const a of agents) if (a.side() !== 'offer') pushDefined(bids, a.proposal(round, offers));
    const orders = [...offers, ...bids];
    messages += orders.length;
    const clearing = clearRound(orders, { interval: setup.interval, round });
    final = clearing;
    let changed = 0;
    for (const a of agents) if (a.observe(clearing, orders) !== 'hold') changed++;
    const summary: RoundSummary = {
      round,
      orders: orders.length,
      tradedWh: clearing.totals.tradedWh,
      minPrice: Math.min(...prices),
      maxPrice: Math.max(...prices),
      changed,
    };
    summaries.push(summary);
    if (options.keepHistory) history.push({ orders, clearing });
    options.onRound?.(summary, clearing);
    if (changed === 0) {
      stable = true;
      break;
    }
  }
  const last = final as RoundClearing;
  return {
    interval: setup.interval,
    rounds: round,
    stable,
    final: last,
    summaries,
    messages,
    outcomes: settleWithGrid(participants, setup.grid, last.trades, agents),
    ...(options.keepHistory ? { history } : {}),
  };
}

/**
 * Each MGMC's position once the trades stand and it meets the rest with the grid: with a P2P net s it still exports
 * at the feed-in price what its curve would sell there beyond s, or imports at the import price what it would buy
 * there beyond s; otherwise it sits at s.
 */
export function settleWithGrid(
  participants: readonly BargainingParticipant[],
  grid: GridPrices,
  trades: readonly Trade[],
  agents?: readonly Bargainer[],
): ParticipantOutcome[] {
  const net = new Map<string, number>();
  const cash = new Map<string, number>();
  for (const t of trades) {
    const s = t.seller.toLowerCase();
    const b = t.buyer.toLowerCase();
    const amount = (t.qtyWh * t.price) / 1000;
    net.set(s, (net.get(s) ?? 0) + t.qtyWh);
    net.set(b, (net.get(b) ?? 0) - t.qtyWh);
    cash.set(s, (cash.get(s) ?? 0) + amount);
    cash.set(b, (cash.get(b) ?? 0) - amount);
  }
  return participants.map((p, i) => {
    const key = p.anonym.toLowerCase();
    const s = net.get(key) ?? 0;
    const low = netAt(p.curve, grid.exportPrice);
    const high = netAt(p.curve, grid.importPrice);
    const position = low > s ? low : high < s ? high : s;
    const gridNet = position - s;
    const agent = agents?.[i];
    return {
      anonym: p.anonym,
      ...(agent === undefined ? {} : { price: agent.price }),
      p2pNetWh: s,
      p2pCashMicro: cash.get(key) ?? 0,
      positionWh: position,
      gridImportWh: Math.max(0, -gridNet),
      gridExportWh: Math.max(0, gridNet),
    };
  });
}

function pushDefined<T>(list: T[], item: T | undefined): void {
  if (item !== undefined) list.push(item);
}
