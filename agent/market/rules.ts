/**
 * Contract rules: what an MGMC's owner allows its market agent to agree to (config `market.rules`), as plain data.
 *
 * The same rules are applied twice: before sending (the agent never publishes an order that breaks them, and its
 * orders carry the rules others must respect: `green` for green-only buying, `exclude`/`only` for denied/allowed
 * counterparties) and on receipt (an offer or bid it may not trade with is not one it picks, and a clearing that
 * would give it a trade breaking them is refused).
 */
import type { Address } from '../identity/keys.js';
import { counterpartyList, type OrderError, type OrderFields, type Side } from './order.js';

export interface ContractRules {
  /** Never sell below this price (micro-units per kWh). */
  readonly floorPrice?: number;
  /** Never buy above this price (micro-units per kWh). */
  readonly ceilingPrice?: number;
  /** Most Wh this MGMC trades in one interval, per side. */
  readonly maxQtyWh?: number;
  /** Buy green energy only. */
  readonly greenOnly?: boolean;
  /** When set, the only counterparties (anonyms) it trades with. */
  readonly allow?: readonly Address[];
  /** Counterparties (anonyms) it never trades with. */
  readonly deny?: readonly Address[];
  /** Last round it bargains in (it holds its last price after that); the market's cap applies when lower. */
  readonly roundCap?: number;
}

export type RuleBreakCode =
  | 'below-floor'
  | 'above-ceiling'
  | 'over-max-qty'
  | 'not-green'
  | 'counterparty-denied'
  | 'round-cap'
  | 'rule-fields';

export interface RuleBreak {
  readonly code: RuleBreakCode;
  readonly detail: string;
}

export class RulesError extends Error {
  override name = 'RulesError';
}

const KEYS = ['floorPrice', 'ceilingPrice', 'maxQtyWh', 'greenOnly', 'allow', 'deny', 'roundCap'];

/**
 * Reads rules from config data (`where` names the place, e.g. "config.yaml: market.rules"). Throws a RulesError
 * listing every problem at once.
 */
export function parseRules(raw: unknown, where = 'market.rules'): ContractRules {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new RulesError(`${where}: rules must be a mapping`);
  const data = raw as Record<string, unknown>;
  const problems: string[] = [];
  const out: { -readonly [K in keyof ContractRules]: ContractRules[K] } = {};
  for (const key of Object.keys(data)) {
    if (!KEYS.includes(key)) problems.push(`unknown rule ${key} (known: ${KEYS.join(', ')})`);
  }
  const uint = (key: 'floorPrice' | 'ceilingPrice' | 'maxQtyWh' | 'roundCap', min: number, unit: string) => {
    const v = data[key];
    if (v === undefined) return;
    if (!Number.isSafeInteger(v) || (v as number) < min) problems.push(`${key} must be an integer >= ${min} (${unit})`);
    else out[key] = v as number;
  };
  uint('floorPrice', 0, 'micro-units per kWh');
  uint('ceilingPrice', 0, 'micro-units per kWh');
  uint('maxQtyWh', 1, 'Wh');
  uint('roundCap', 1, 'rounds');
  if (data.greenOnly !== undefined) {
    if (typeof data.greenOnly !== 'boolean') problems.push('greenOnly must be true or false');
    else out.greenOnly = data.greenOnly;
  }
  for (const key of ['allow', 'deny'] as const) {
    const v = data[key];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.some((a) => typeof a !== 'string')) {
      problems.push(`${key} must be a list of anonym addresses`);
      continue;
    }
    try {
      out[key] = counterpartyList(v as string[], key);
    } catch (err) {
      problems.push((err as OrderError).message);
    }
  }
  if (out.allow !== undefined && out.deny !== undefined) {
    const denied = new Set(out.deny.map((a) => a.toLowerCase()));
    const both = out.allow.filter((a) => denied.has(a.toLowerCase()));
    if (both.length > 0) problems.push(`anonym(s) ${both.join(', ')} are both allowed and denied; keep one`);
  }
  if (problems.length > 0) throw new RulesError(`${where}:\n  - ${problems.join('\n  - ')}`);
  return out;
}

/** True when the rules let this MGMC trade with `anonym`. */
export function counterpartyAllowed(rules: ContractRules, anonym: Address): boolean {
  const lower = anonym.toLowerCase();
  if (rules.deny?.some((a) => a.toLowerCase() === lower)) return false;
  if (rules.allow !== undefined && !rules.allow.some((a) => a.toLowerCase() === lower)) return false;
  return true;
}

/** The price an MGMC whose bargaining price is `price` may ask (offer) or bid (bid) under its rules. */
export function rulePrice(rules: ContractRules, side: Side, price: number): number {
  if (side === 'offer' && rules.floorPrice !== undefined) return Math.max(price, rules.floorPrice);
  if (side === 'bid' && rules.ceilingPrice !== undefined) return Math.min(price, rules.ceilingPrice);
  return price;
}

/** The order fields that carry the rules to the others: green-only, excluded and allowed counterparties. */
export function ruleFields(
  rules: ContractRules,
  side: Side,
  ownGreen: boolean,
): Pick<OrderFields, 'green' | 'exclude' | 'only'> {
  return {
    green: side === 'offer' ? ownGreen : rules.greenOnly === true,
    ...(rules.deny !== undefined && rules.deny.length > 0 ? { exclude: [...rules.deny] } : {}),
    ...(rules.allow !== undefined ? { only: [...rules.allow] } : {}),
  };
}

/**
 * Every rule `order` (this MGMC's own, about to be sent) breaks; empty when it may go out. Checks the price against
 * the floor or ceiling, the quantity, green-only buying, the round cap, and that the order carries the rules'
 * exclusions, so that the clearing others compute respects them too.
 */
export function checkOwnOrder(order: OrderFields, rules: ContractRules): RuleBreak[] {
  const out: RuleBreak[] = [];
  if (order.side === 'offer' && rules.floorPrice !== undefined && order.price < rules.floorPrice) {
    out.push({ code: 'below-floor', detail: `offer at ${order.price} is below the floor price ${rules.floorPrice}` });
  }
  if (order.side === 'bid' && rules.ceilingPrice !== undefined && order.price > rules.ceilingPrice) {
    out.push({
      code: 'above-ceiling',
      detail: `bid at ${order.price} is above the ceiling price ${rules.ceilingPrice}`,
    });
  }
  if (rules.maxQtyWh !== undefined && order.qtyWh > rules.maxQtyWh) {
    out.push({ code: 'over-max-qty', detail: `${order.qtyWh} Wh is over the maximum of ${rules.maxQtyWh} Wh` });
  }
  if (order.side === 'bid' && rules.greenOnly === true && !order.green) {
    out.push({ code: 'not-green', detail: 'the rules buy green energy only, but the bid accepts any' });
  }
  if (rules.roundCap !== undefined && order.round > rules.roundCap) {
    out.push({ code: 'round-cap', detail: `round ${order.round} is beyond the contract's cap of ${rules.roundCap}` });
  }
  const excluded = new Set((order.exclude ?? []).map((a) => a.toLowerCase()));
  const missing = (rules.deny ?? []).filter((a) => !excluded.has(a.toLowerCase()));
  if (missing.length > 0) {
    out.push({ code: 'rule-fields', detail: `the order does not exclude denied counterparties ${missing.join(', ')}` });
  }
  if (rules.allow !== undefined) {
    const allowed = new Set(rules.allow.map((a) => a.toLowerCase()));
    const only = order.only;
    if (only === undefined || only.some((a) => !allowed.has(a.toLowerCase()))) {
      out.push({ code: 'rule-fields', detail: 'the order does not restrict itself to the allowed counterparties' });
    }
  }
  return out;
}

/**
 * Why this MGMC (acting on `side`) may not trade with the received order `other`, or undefined when it may: the
 * counterparty, green-only buying, and the floor or ceiling against the other's price.
 */
export function checkCounterOrder(
  rules: ContractRules,
  side: Side,
  other: Pick<OrderFields, 'anonym' | 'side' | 'price' | 'green'>,
): RuleBreak | undefined {
  if (other.side === side) return { code: 'rule-fields', detail: `a ${side} cannot be matched with a ${other.side}` };
  if (!counterpartyAllowed(rules, other.anonym)) {
    return { code: 'counterparty-denied', detail: `the rules do not allow trading with ${other.anonym}` };
  }
  if (side === 'bid' && rules.greenOnly === true && !other.green) {
    return { code: 'not-green', detail: `offer from ${other.anonym} is not green; the rules buy green only` };
  }
  if (side === 'bid' && rules.ceilingPrice !== undefined && other.price > rules.ceilingPrice) {
    return { code: 'above-ceiling', detail: `offer at ${other.price} is above the ceiling ${rules.ceilingPrice}` };
  }
  if (side === 'offer' && rules.floorPrice !== undefined && other.price < rules.floorPrice) {
    return { code: 'below-floor', detail: `bid at ${other.price} is below the floor ${rules.floorPrice}` };
  }
  return undefined;
}

/** A trade as the rules see it (clearing.ts Trade has these fields). */
export interface RuleTrade {
  readonly id: string;
  readonly seller: Address;
  readonly buyer: Address;
  readonly qtyWh: number;
  readonly price: number;
  readonly green: boolean;
}

/**
 * Every rule the trades naming `self` break, checked on receipt of a clearing: the counterparty, the price against
 * floor or ceiling, green-only buying and the total quantity per side.
 */
export function checkTrades(trades: readonly RuleTrade[], self: Address, rules: ContractRules): RuleBreak[] {
  const out: RuleBreak[] = [];
  const me = self.toLowerCase();
  let sold = 0;
  let bought = 0;
  for (const t of trades) {
    const selling = t.seller.toLowerCase() === me;
    const buying = t.buyer.toLowerCase() === me;
    if (!selling && !buying) continue;
    const other = selling ? t.buyer : t.seller;
    if (!counterpartyAllowed(rules, other)) {
      out.push({ code: 'counterparty-denied', detail: `trade ${t.id} is with ${other}, whom the rules do not allow` });
    }
    if (selling) {
      sold += t.qtyWh;
      if (rules.floorPrice !== undefined && t.price < rules.floorPrice) {
        out.push({
          code: 'below-floor',
          detail: `trade ${t.id} sells at ${t.price}, below the floor ${rules.floorPrice}`,
        });
      }
    } else {
      bought += t.qtyWh;
      if (rules.ceilingPrice !== undefined && t.price > rules.ceilingPrice) {
        out.push({
          code: 'above-ceiling',
          detail: `trade ${t.id} buys at ${t.price}, above the ceiling ${rules.ceilingPrice}`,
        });
      }
      if (rules.greenOnly === true && !t.green) {
        out.push({ code: 'not-green', detail: `trade ${t.id} buys energy that is not green` });
      }
    }
  }
  if (rules.maxQtyWh !== undefined && (sold > rules.maxQtyWh || bought > rules.maxQtyWh)) {
    out.push({
      code: 'over-max-qty',
      detail: `trades of ${Math.max(sold, bought)} Wh are over the maximum of ${rules.maxQtyWh} Wh`,
    });
  }
  return out;
}
