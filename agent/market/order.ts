/**
 * Market orders (docs/market.md, "Orders"): an offer (surplus to sell) or a bid (deficit to buy) for one market
 * interval and one bargaining round, signed under the MGMC's anonym key so that the other microgrids see only the
 * anonym (docs/protocol.md section 11).
 *
 * Signed bytes: docs/protocol.md section 2 with type tag `mgmc/order/v1` over the canonical JSON of the order without
 * `id` and `sig`. The 32-byte digest *is* the order id: the id names exactly one content on one chain, so two orders
 * with the same id are the same order (a replay) and an order cannot be altered without changing its id.
 *
 * checkOrder never throws on bad input: it returns a typed rejection (code + a sentence for people), in the order
 * documented in docs/market.md, so every receiver rejects the same order for the same reason.
 */
import { fromHex, toHex } from '../identity/bytes.js';
import { type Address, parseAddress } from '../identity/keys.js';
import { type SignatureVerifier, signingDigest, verifyDigest } from '../identity/signing.js';
import type { Signer } from '../ledger/block.js';
import { type CanonicalValue, canonicalBytes } from '../ledger/canonical.js';
import type { GridPrices } from './curve.js';

export const ORDER_TAG = 'mgmc/order/v1';
/** Most anonyms an order may name in `exclude` or `only`. */
export const MAX_COUNTERPARTY_LIST = 256;

export type Side = 'offer' | 'bid';

/** Everything the MGMC decides; id and sig are derived from it. */
export interface OrderFields {
  /** EIP-55 address of the anonym key that signs the order. */
  readonly anonym: Address;
  /** Market interval start, ms since the Unix epoch (UTC). */
  readonly interval: number;
  readonly side: Side;
  /** Wh, integer >= 1. */
  readonly qtyWh: number;
  /** micro-units of currency per kWh: an offer's asking price, a bid's highest acceptable price. */
  readonly price: number;
  /** Offer: the energy is green. Bid: only green energy is acceptable. */
  readonly green: boolean;
  /** Bargaining round, 1 for the first. */
  readonly round: number;
  /** ms since the epoch after which the order is void. */
  readonly expiry: number;
  /** Id of the same MGMC's order in an earlier round of this interval (the chain of its proposals). */
  readonly prev?: string;
  /**
   * The interval's bargaining attempt, present from 2 on: the market of an interval is bargained again after the DSO
   * capped net positions (docs/market.md, "Re-trading"), and its orders must not be taken for the first attempt's.
   */
  readonly attempt?: number;
  /** Anonyms this order must never be matched with (contract rule `deny`), sorted by lower-case hex. */
  readonly exclude?: readonly Address[];
  /** When present, the only anonyms this order may be matched with (contract rule `allow`), sorted likewise. */
  readonly only?: readonly Address[];
}

export interface Order extends OrderFields {
  /** 0x-hex of the 32-byte signing digest of the fields. */
  readonly id: string;
}

export interface SignedOrder extends Order {
  /** 0x-hex of the 65-byte anonym signature r ‖ s ‖ v over the id. */
  readonly sig: string;
}

export type OrderRejectionCode =
  /** Not an order: missing, unknown or mistyped field, id not matching the content. */
  | 'malformed'
  /** No signature. */
  | 'unsigned'
  /** A signature that is not the anonym's over this order. */
  | 'forged'
  /** The anonym is not in the DSO's authorized set. */
  | 'unauthorized'
  /** The anonym's MGMC was revoked by the DSO. */
  | 'revoked'
  /** An order for another interval than the one being traded. */
  | 'wrong-interval'
  /** The interval's gate has closed. */
  | 'closed-interval'
  /** Past its own expiry. */
  | 'expired'
  /** Beyond the market's round cap. */
  | 'round-cap'
  /** Not for the round being collected. */
  | 'wrong-round'
  /** Breaks a market rule (price outside the grid band, quantity over the cap). */
  | 'rule-break'
  /** A second, different order from the same anonym for the same round: the same energy offered or asked twice. */
  | 'double-acceptance'
  /** An order already admitted (same id). */
  | 'replay';

export interface OrderRejection {
  readonly ok: false;
  readonly code: OrderRejectionCode;
  /** What is wrong, for a person: names the field, the order id and the anonym when known. */
  readonly detail: string;
  readonly id?: string;
  readonly anonym?: string;
}

export type OrderCheck = { readonly ok: true; readonly order: SignedOrder } | OrderRejection;

export class OrderError extends Error {
  override name = 'OrderError';
}

/** Limits every order of the market must keep, whoever sends it. */
export interface MarketLimits {
  /** Grid prices: P2P prices lie in [exportPrice, importPrice]. */
  readonly band: GridPrices;
  /** Last round of bargaining. */
  readonly roundCap: number;
  /** Largest order (Wh); none when absent. */
  readonly maxQtyWh?: number;
}

/** What a receiver knows when an order arrives. */
export interface OrderContext {
  readonly chainId: number;
  /** Receipt time, ms. */
  readonly now: number;
  /** The interval being traded. */
  readonly interval: number;
  /** When the interval's gate closes (ms): orders received at or after it are refused. */
  readonly gateClosure: number;
  /** The round being collected; undefined accepts any round up to the cap (a recorder or auditor). */
  readonly round?: number;
  readonly limits: MarketLimits;
  /** True when the anonym is in the DSO's current authorized set. */
  readonly isAuthorized: (anonym: Address) => boolean;
  /** True when the DSO revoked the anonym's MGMC (to tell `revoked` from `unauthorized`). */
  readonly isRevoked?: (anonym: Address) => boolean;
  /** Cached signature verifier (faster for many orders from few anonyms). */
  readonly verifier?: SignatureVerifier;
}

const ID_RE = /^0x[0-9a-f]{64}$/;
const SIG_RE = /^0x[0-9a-f]{130}$/;
const REQUIRED = ['anonym', 'interval', 'side', 'qtyWh', 'price', 'green', 'round', 'expiry'] as const;
const OPTIONAL = ['prev', 'attempt', 'exclude', 'only'] as const;
const KNOWN = new Set<string>([...REQUIRED, ...OPTIONAL, 'id', 'sig']);

/** The canonical object that is signed: the fields, without id and sig, optional ones only when present. */
function signedObject(fields: OrderFields): CanonicalValue {
  return {
    anonym: fields.anonym,
    interval: fields.interval,
    side: fields.side,
    qtyWh: fields.qtyWh,
    price: fields.price,
    green: fields.green,
    round: fields.round,
    expiry: fields.expiry,
    prev: fields.prev,
    attempt: fields.attempt,
    exclude: fields.exclude,
    only: fields.only,
  };
}

/** The order id: the section 2 digest (tag mgmc/order/v1, `chainId`) of the canonical fields, as 0x-hex. */
export function orderId(fields: OrderFields, chainId: number): string {
  return toHex(signingDigest(ORDER_TAG, chainId, canonicalBytes(signedObject(fields))));
}

/** Checks the fields and returns the order with its id. Throws an OrderError naming the bad field. */
export function buildOrder(fields: OrderFields, chainId: number): Order {
  const problem = fieldProblem(fields as unknown as Record<string, unknown>);
  if (problem !== undefined) throw new OrderError(`order of ${String(fields.anonym)}: ${problem}`);
  const clean = pickFields(fields);
  return { ...clean, id: orderId(clean, chainId) };
}

/** Builds and signs an order with the anonym's signer (whose address must be `fields.anonym`). */
export function signOrder(fields: OrderFields, signer: Signer, chainId: number): SignedOrder {
  if (signer.address !== fields.anonym) {
    throw new OrderError(`order anonym ${fields.anonym} is not the signing anonym key ${signer.address}`);
  }
  const order = buildOrder(fields, chainId);
  return { ...order, sig: toHex(signer.signDigest(fromHex(order.id, 'order id', 32))) };
}

/** Canonical bytes of an order as it travels and is stored (with id, and sig when signed). */
export function encodeOrder(order: Order | SignedOrder): Uint8Array {
  const sig = (order as Partial<SignedOrder>).sig;
  return canonicalBytes({ ...(signedObject(order) as Record<string, CanonicalValue>), id: order.id, sig });
}

/**
 * Checks one received order against everything a receiver knows, in this order (the first failure is the reason):
 * shape (`malformed`), signature (`unsigned`, `malformed` when the id does not match the content, `forged`), the
 * DSO's authorized set (`revoked`, `unauthorized`), interval and time (`wrong-interval`, `closed-interval`,
 * `expired`), round (`round-cap`, `wrong-round`), market limits (`rule-break`). Replays and double acceptance need
 * memory: OrderBook adds them. Never throws.
 */
export function checkOrder(input: unknown, ctx: OrderContext): OrderCheck {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return reject('malformed', 'an order must be a JSON object');
  }
  const raw = input as Record<string, unknown>;
  const id = typeof raw.id === 'string' ? raw.id : undefined;
  const anonym = typeof raw.anonym === 'string' ? raw.anonym : undefined;
  const named = (text: string) => `order ${id ?? '(no id)'} from ${anonym ?? '(no anonym)'}: ${text}`;
  const unknown = Object.keys(raw).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0) return reject('malformed', named(`unknown field(s) ${unknown.join(', ')}`), id, anonym);
  const problem = fieldProblem(raw);
  if (problem !== undefined) return reject('malformed', named(problem), id, anonym);
  if (id === undefined || !ID_RE.test(id)) {
    return reject('malformed', named('id must be 0x and 64 lower-case hex digits'), id, anonym);
  }
  const fields = pickFields(raw as unknown as OrderFields);
  const order = raw as unknown as SignedOrder;
  if (raw.sig === undefined) return reject('unsigned', named('the order carries no signature (sig)'), id, anonym);
  if (typeof raw.sig !== 'string' || !SIG_RE.test(raw.sig)) {
    return reject('forged', named('sig must be 0x and 130 lower-case hex digits (r ‖ s ‖ v)'), id, anonym);
  }
  if (orderId(fields, ctx.chainId) !== id) {
    return reject(
      'malformed',
      named(`id is not the digest of the order's content on chain ${ctx.chainId} (altered, or for another chain)`),
      id,
      anonym,
    );
  }
  const digest = fromHex(id, 'order id', 32);
  const sig = fromHex(raw.sig, 'sig', 65);
  const good = ctx.verifier
    ? ctx.verifier.verify(digest, sig, fields.anonym)
    : verifyDigest(digest, sig, fields.anonym);
  if (!good) return reject('forged', named('the signature is not the anonym key’s over this order'), id, anonym);
  if (ctx.isRevoked?.(fields.anonym)) {
    return reject('revoked', named('the DSO revoked this MGMC; its orders are ignored'), id, anonym);
  }
  if (!ctx.isAuthorized(fields.anonym)) {
    return reject('unauthorized', named('the anonym is not in the DSO’s authorized set'), id, anonym);
  }
  if (fields.interval !== ctx.interval) {
    return reject(
      'wrong-interval',
      named(`for interval ${fields.interval}, this market trades ${ctx.interval}`),
      id,
      anonym,
    );
  }
  if (ctx.now >= ctx.gateClosure) {
    return reject('closed-interval', named(`received at ${ctx.now}, gate closed at ${ctx.gateClosure}`), id, anonym);
  }
  if (ctx.now >= fields.expiry) {
    return reject('expired', named(`expired at ${fields.expiry}, received at ${ctx.now}`), id, anonym);
  }
  if (fields.round > ctx.limits.roundCap) {
    return reject('round-cap', named(`round ${fields.round} is beyond the cap of ${ctx.limits.roundCap}`), id, anonym);
  }
  if (ctx.round !== undefined && fields.round !== ctx.round) {
    return reject(
      'wrong-round',
      named(`for round ${fields.round}, the market collects round ${ctx.round}`),
      id,
      anonym,
    );
  }
  const limitProblem = limitBreak(fields, ctx.limits);
  if (limitProblem !== undefined) return reject('rule-break', named(limitProblem), id, anonym);
  return { ok: true, order: { ...fields, id, sig: order.sig } };
}

/** Why `fields` break the market limits, or undefined. Used before sending too. */
export function limitBreak(
  fields: Pick<OrderFields, 'price' | 'qtyWh' | 'round'>,
  limits: MarketLimits,
): string | undefined {
  const { importPrice, exportPrice } = limits.band;
  if (fields.price < exportPrice || fields.price > importPrice) {
    return `price ${fields.price} is outside the grid band [${exportPrice}, ${importPrice}] (feed-in, import)`;
  }
  if (limits.maxQtyWh !== undefined && fields.qtyWh > limits.maxQtyWh) {
    return `quantity ${fields.qtyWh} Wh is over the market's maximum of ${limits.maxQtyWh} Wh`;
  }
  if (fields.round > limits.roundCap) return `round ${fields.round} is beyond the cap of ${limits.roundCap}`;
  return undefined;
}

/**
 * The orders of one interval as one receiver admitted them: remembers ids (replays) and which anonym sent what in
 * which round (double acceptance). An anonym that sends two different orders for one round has the second refused
 * here, and both are kept as evidence: clearRound excludes every anonym with two orders in a round, so the outcome
 * does not depend on which of the two arrived first.
 */
export class OrderBook {
  private readonly byId = new Map<string, SignedOrder>();
  private readonly byRound = new Map<number, SignedOrder[]>();
  private readonly slots = new Map<string, string>();

  constructor(readonly interval: number) {}

  /** Checks `input` (checkOrder, then replay and double acceptance) and remembers it when admitted. */
  admit(input: unknown, ctx: OrderContext): OrderCheck {
    const id = (input as { id?: unknown } | null)?.id;
    if (typeof id === 'string' && this.byId.has(id)) {
      const anonym = this.byId.get(id)?.anonym;
      return reject('replay', `order ${id} from ${anonym} was already admitted; ignored`, id, anonym);
    }
    const checked = checkOrder(input, { ...ctx, interval: this.interval });
    if (!checked.ok) return checked;
    const order = checked.order;
    const slot = `${order.anonym.toLowerCase()}/${order.round}`;
    const first = this.slots.get(slot);
    this.byId.set(order.id, order);
    const list = this.byRound.get(order.round) ?? [];
    list.push(order);
    this.byRound.set(order.round, list);
    if (first !== undefined) {
      return reject(
        'double-acceptance',
        `order ${order.id} from ${order.anonym}: a second order for round ${order.round} (first: ${first}); ` +
          'both are void for this round',
        order.id,
        order.anonym,
      );
    }
    this.slots.set(slot, order.id);
    return checked;
  }

  /** Every validly signed order of `round`, double ones included (clearRound voids those). */
  ordersOf(round: number): readonly SignedOrder[] {
    return [...(this.byRound.get(round) ?? [])];
  }

  get size(): number {
    return this.byId.size;
  }
}

function reject(code: OrderRejectionCode, detail: string, id?: string, anonym?: string): OrderRejection {
  return { ok: false, code, detail, ...(id === undefined ? {} : { id }), ...(anonym === undefined ? {} : { anonym }) };
}

function pickFields(raw: OrderFields): OrderFields {
  const out: { -readonly [K in keyof OrderFields]: OrderFields[K] } = {
    anonym: raw.anonym,
    interval: raw.interval,
    side: raw.side,
    qtyWh: raw.qtyWh,
    price: raw.price,
    green: raw.green,
    round: raw.round,
    expiry: raw.expiry,
  };
  if (raw.prev !== undefined) out.prev = raw.prev;
  if (raw.attempt !== undefined) out.attempt = raw.attempt;
  if (raw.exclude !== undefined) out.exclude = [...raw.exclude];
  if (raw.only !== undefined) out.only = [...raw.only];
  return out;
}

function isUint(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** What is wrong with the fields, or undefined. Addresses must be EIP-55 (they are signed as text). */
function fieldProblem(raw: Record<string, unknown>): string | undefined {
  for (const key of REQUIRED) if (raw[key] === undefined) return `field ${key} is missing`;
  if (typeof raw.anonym !== 'string' || !isChecksummed(raw.anonym)) {
    return `anonym must be an EIP-55 address, got ${JSON.stringify(raw.anonym)}`;
  }
  if (!isUint(raw.interval)) return 'interval must be ms since the epoch (integer >= 0)';
  if (raw.side !== 'offer' && raw.side !== 'bid')
    return `side must be "offer" or "bid", got ${JSON.stringify(raw.side)}`;
  if (!isUint(raw.qtyWh) || raw.qtyWh < 1)
    return `qtyWh must be an integer >= 1 (Wh), got ${JSON.stringify(raw.qtyWh)}`;
  if (!isUint(raw.price))
    return `price must be an integer >= 0 (micro-units per kWh), got ${JSON.stringify(raw.price)}`;
  if (typeof raw.green !== 'boolean') return 'green must be true or false';
  if (!isUint(raw.round) || raw.round < 1) return `round must be an integer >= 1, got ${JSON.stringify(raw.round)}`;
  if (!isUint(raw.expiry)) return 'expiry must be ms since the epoch (integer >= 0)';
  if (raw.prev !== undefined && (typeof raw.prev !== 'string' || !ID_RE.test(raw.prev))) {
    return 'prev must be an order id (0x and 64 lower-case hex digits)';
  }
  if (raw.attempt !== undefined && (!isUint(raw.attempt) || raw.attempt < 2)) {
    return `attempt must be an integer >= 2 when present (the first attempt leaves it out), got ${JSON.stringify(raw.attempt)}`;
  }
  for (const key of ['exclude', 'only'] as const) {
    const list = raw[key];
    if (list === undefined) continue;
    if (!Array.isArray(list) || list.length > MAX_COUNTERPARTY_LIST) {
      return `${key} must be an array of at most ${MAX_COUNTERPARTY_LIST} anonyms`;
    }
    let previous = '';
    for (const item of list) {
      if (typeof item !== 'string' || !isChecksummed(item)) return `${key} holds ${JSON.stringify(item)}, not EIP-55`;
      const lower = item.toLowerCase();
      if (lower <= previous) return `${key} must be sorted by lower-case hex without repeats`;
      previous = lower;
    }
  }
  return undefined;
}

function isChecksummed(text: string): boolean {
  try {
    return parseAddress(text) === text;
  } catch {
    return false;
  }
}

/** Sorts and checksums a list of anonyms as `exclude` and `only` carry them. Throws an OrderError on a bad one. */
export function counterpartyList(anonyms: readonly string[], what: string): Address[] {
  const parsed = anonyms.map((a, i) => {
    try {
      return parseAddress(a, `${what}[${i}]`);
    } catch (err) {
      throw new OrderError((err as Error).message);
    }
  });
  return [...new Set(parsed)].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
}
