/**
 * Market orders and trades as ledger record bodies (agent/ledger/records.ts: types `order` and `trade`).
 *
 * An `order` body is the signed order exactly as it travels (docs/market.md, "Orders"): every field, `id` and `sig`,
 * optional fields only when present. Stored like that, anyone can re-check its signature from the ledger alone and
 * recompute the round's clearing. A `trade` body is the Trade of clearing.ts with all its fields.
 */
import type { Address } from '../identity/keys.js';
import type { CanonicalValue } from '../ledger/canonical.js';
import type { RecordBody } from '../ledger/records.js';
import type { Trade } from './clearing.js';
import { checkOrder, type OrderCheck, type SignedOrder } from './order.js';

/** The ledger body of an admitted order: its fields with id and sig, as signed. */
export function toOrderRecord(order: SignedOrder): RecordBody {
  const body: Record<string, CanonicalValue> = {
    id: order.id,
    anonym: order.anonym,
    interval: order.interval,
    side: order.side,
    qtyWh: order.qtyWh,
    price: order.price,
    green: order.green,
    round: order.round,
    expiry: order.expiry,
    sig: order.sig,
  };
  if (order.prev !== undefined) body.prev = order.prev;
  if (order.attempt !== undefined) body.attempt = order.attempt;
  if (order.exclude !== undefined) body.exclude = [...order.exclude];
  if (order.only !== undefined) body.only = [...order.only];
  return body;
}

/**
 * Reads an order back from its ledger body and re-checks it as a recorder would: shape, id = digest of the content on
 * `chainId`, signature by the anonym. Time, authorization and market limits are not re-judged (they held, or not, when
 * the order arrived; the ledger keeps only admitted orders). Never throws.
 */
export function fromOrderRecord(body: RecordBody, chainId: number): OrderCheck {
  return checkOrder(body, {
    chainId,
    now: 0,
    interval: body.interval as number,
    gateClosure: Number.MAX_SAFE_INTEGER,
    limits: { band: { exportPrice: 0, importPrice: Number.MAX_SAFE_INTEGER }, roundCap: Number.MAX_SAFE_INTEGER },
    isAuthorized: () => true,
  });
}

/** The ledger body of a trade: every Trade field. */
export function toTradeRecord(trade: Trade): RecordBody {
  return {
    id: trade.id,
    interval: trade.interval,
    round: trade.round,
    seller: trade.seller,
    buyer: trade.buyer,
    offer: trade.offer,
    bid: trade.bid,
    qtyWh: trade.qtyWh,
    price: trade.price,
    green: trade.green,
  };
}

export class MarketRecordError extends Error {
  override name = 'MarketRecordError';
}

/** Reads a trade from its ledger body; throws a MarketRecordError naming the field (`where` says which record). */
export function fromTradeRecord(body: RecordBody, where = 'trade record'): Trade {
  const str = (key: string): string => {
    const v = body[key];
    if (typeof v !== 'string' || v.length === 0) throw new MarketRecordError(`${where}: ${key} must be a string`);
    return v;
  };
  const uint = (key: string): number => {
    const v = body[key];
    if (!Number.isSafeInteger(v) || (v as number) < 0) {
      throw new MarketRecordError(`${where}: ${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  if (typeof body.green !== 'boolean') throw new MarketRecordError(`${where}: green must be true or false`);
  return {
    id: str('id'),
    interval: uint('interval'),
    round: uint('round'),
    seller: str('seller') as Address,
    buyer: str('buyer') as Address,
    offer: str('offer'),
    bid: str('bid'),
    qtyWh: uint('qtyWh'),
    price: uint('price'),
    green: body.green,
  };
}
