import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { SignatureVerifier, signingDigest } from '../../../agent/identity/signing.js';
import { signerFromPrivateKey } from '../../../agent/ledger/block.js';
import { canonicalBytes, parseCanonical } from '../../../agent/ledger/canonical.js';
import { validateBody } from '../../../agent/ledger/records.js';
import { deriveAnonymKey } from '../../../agent/link/anonym.js';
import {
  buildOrder,
  checkOrder,
  encodeOrder,
  ORDER_TAG,
  OrderBook,
  type OrderContext,
  type OrderFields,
  orderId,
  type SignedOrder,
  signOrder,
} from '../../../agent/market/order.js';

const CHAIN = 4711;
const T = Date.UTC(2025, 5, 1, 12);
// Each MGMC signs orders with its anonym key, derived from its own key (agent/link/anonym.ts).
const mgmcA = keyPairFromPrivateKey(fromHex(`0x${'11'.repeat(32)}`));
const mgmcB = keyPairFromPrivateKey(fromHex(`0x${'22'.repeat(32)}`));
const anonA = deriveAnonymKey(mgmcA.privateKey, CHAIN, 0);
const anonB = deriveAnonymKey(mgmcB.privateKey, CHAIN, 0);
const signerA = signerFromPrivateKey(anonA.privateKey, anonA.address);
const signerB = signerFromPrivateKey(anonB.privateKey, anonB.address);

function fields(over: Partial<OrderFields> = {}): OrderFields {
  return {
    anonym: anonA.address,
    interval: T,
    side: 'offer',
    qtyWh: 5_000,
    price: 150_000,
    green: true,
    round: 1,
    expiry: T - 300_000,
    ...over,
  };
}

function context(over: Partial<OrderContext> = {}): OrderContext {
  return {
    chainId: CHAIN,
    now: T - 3_600_000,
    interval: T,
    gateClosure: T - 300_000,
    round: 1,
    limits: { band: { importPrice: 300_000, exportPrice: 80_000 }, roundCap: 30, maxQtyWh: 100_000 },
    isAuthorized: (a) => a === anonA.address || a === anonB.address,
    ...over,
  };
}

/** What a receiver gets off the wire: the canonical bytes, parsed. */
function wire(order: SignedOrder | Record<string, unknown>): unknown {
  return JSON.parse(JSON.stringify(order));
}

describe('signing under the anonym key', () => {
  it('the id is the section 2 digest of the canonical fields and the signature recovers the anonym', () => {
    const order = signOrder(fields(), signerA, CHAIN);
    const expected = signingDigest(
      ORDER_TAG,
      CHAIN,
      canonicalBytes({
        anonym: anonA.address,
        expiry: T - 300_000,
        green: true,
        interval: T,
        price: 150_000,
        qtyWh: 5_000,
        round: 1,
        side: 'offer',
      }),
    );
    expect(order.id).toBe(toHex(expected));
    const checked = checkOrder(wire(order), context());
    expect(checked).toEqual({ ok: true, order });
  });

  it('travels as canonical bytes that parse back to the same order and fit the ledger order record', () => {
    const order = signOrder(fields({ prev: `0x${'ab'.repeat(32)}`, exclude: [anonB.address] }), signerA, CHAIN);
    const parsed = parseCanonical(encodeOrder(order));
    expect(parsed).toEqual(order);
    expect(() => validateBody('order', parsed)).not.toThrow();
    expect(checkOrder(parsed, context()).ok).toBe(true);
  });

  it('refuses to sign an order of another anonym', () => {
    expect(() => signOrder(fields(), signerB, CHAIN)).toThrow(/is not the signing anonym key/);
  });

  it('accepts through a cached verifier too', () => {
    const verifier = new SignatureVerifier();
    for (let round = 1; round <= 3; round++) {
      const order = signOrder(fields({ round }), signerA, CHAIN);
      expect(checkOrder(wire(order), context({ round, verifier })).ok).toBe(true);
    }
    expect(verifier.size).toBe(1);
  });
});

describe('rejections, with a reason', () => {
  const good = signOrder(fields(), signerA, CHAIN);
  const code = (input: unknown, ctx = context()) => {
    const r = checkOrder(input, ctx);
    return r.ok ? 'ok' : r.code;
  };

  it('malformed: missing, unknown or mistyped fields', () => {
    const { qtyWh: _q, ...missing } = good;
    expect(code(missing)).toBe('malformed');
    expect(code({ ...good, extra: 1 })).toBe('malformed');
    expect(code({ ...good, side: 'sell' })).toBe('malformed');
    expect(code({ ...good, qtyWh: 0 })).toBe('malformed');
    expect(code({ ...good, price: 1.5 })).toBe('malformed');
    expect(code({ ...good, anonym: good.anonym.toLowerCase() })).toBe('malformed');
    expect(code('an order')).toBe('malformed');
    const r = checkOrder({ ...good, extra: 1 }, context());
    expect(!r.ok && r.detail).toMatch(new RegExp(`order ${good.id} from ${good.anonym}: unknown field\\(s\\) extra`));
  });

  it('unsigned, forged, altered, or signed for another chain', () => {
    const { sig: _s, ...unsigned } = good;
    expect(code(unsigned)).toBe('unsigned');
    // Signed by B's key but claiming to be A's.
    const forged = { ...good, sig: toHex(signerB.signDigest(fromHex(good.id))) };
    expect(code(forged)).toBe('forged');
    // A changed quantity no longer matches the id it was signed under.
    expect(code({ ...good, qtyWh: 6_000 })).toBe('malformed');
    // An id recomputed for the changed content does not match the signature.
    const altered = { ...good, qtyWh: 6_000, id: orderId({ ...fields(), qtyWh: 6_000 }, CHAIN) };
    expect(code(altered)).toBe('forged');
    expect(code(wire(good), context({ chainId: CHAIN + 1 }))).toBe('malformed');
  });

  it('revoked and unauthorized anonyms', () => {
    expect(code(wire(good), context({ isRevoked: (a) => a === anonA.address }))).toBe('revoked');
    expect(code(wire(good), context({ isAuthorized: () => false }))).toBe('unauthorized');
  });

  it('wrong interval, closed gate, expired order', () => {
    expect(code(wire(good), context({ interval: T + 3_600_000 }))).toBe('wrong-interval');
    expect(code(wire(good), context({ now: T - 300_000 }))).toBe('closed-interval');
    const short = signOrder(fields({ expiry: T - 3_700_000 }), signerA, CHAIN);
    expect(code(wire(short))).toBe('expired');
  });

  it('round cap and wrong round', () => {
    const late = signOrder(fields({ round: 31 }), signerA, CHAIN);
    expect(code(wire(late), context({ round: undefined }))).toBe('round-cap');
    const next = signOrder(fields({ round: 2 }), signerA, CHAIN);
    expect(code(wire(next))).toBe('wrong-round');
    expect(code(wire(next), context({ round: undefined }))).toBe('ok');
  });

  it('market rules: price outside the grid band, quantity over the cap', () => {
    const cheap = signOrder(fields({ price: 79_999 }), signerA, CHAIN);
    const r = checkOrder(wire(cheap), context());
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe('rule-break');
    expect(!r.ok && r.detail).toMatch(/outside the grid band \[80000, 300000\]/);
    const big = signOrder(fields({ qtyWh: 100_001 }), signerA, CHAIN);
    expect(code(wire(big))).toBe('rule-break');
  });

  it('buildOrder throws on bad fields, naming them', () => {
    expect(() => buildOrder(fields({ exclude: [anonB.address, anonA.address].sort().reverse() }), CHAIN)).toThrow(
      /exclude must be sorted/,
    );
    expect(() => buildOrder(fields({ round: 0 }), CHAIN)).toThrow(/round must be an integer >= 1/);
  });
});

describe('OrderBook: replays and double acceptance', () => {
  it('admits an order once; the same order again is a replay', () => {
    const book = new OrderBook(T);
    const order = signOrder(fields(), signerA, CHAIN);
    expect(book.admit(wire(order), context()).ok).toBe(true);
    const again = book.admit(wire(order), context());
    expect(again.ok).toBe(false);
    expect(!again.ok && again.code).toBe('replay');
    expect(book.ordersOf(1)).toHaveLength(1);
  });

  it('a second, different order of one anonym in one round is refused and both are kept as evidence', () => {
    const book = new OrderBook(T);
    const first = signOrder(fields(), signerA, CHAIN);
    const second = signOrder(fields({ qtyWh: 9_000 }), signerA, CHAIN);
    expect(book.admit(wire(first), context()).ok).toBe(true);
    const r = book.admit(wire(second), context());
    expect(!r.ok && r.code).toBe('double-acceptance');
    expect(!r.ok && r.detail).toContain(first.id);
    expect(book.ordersOf(1).map((o) => o.id)).toEqual([first.id, second.id]);
    // Another anonym, and the same anonym in the next round, are fine.
    expect(book.admit(wire(signOrder(fields({ anonym: anonB.address }), signerB, CHAIN)), context()).ok).toBe(true);
    expect(
      book.admit(wire(signOrder(fields({ round: 2, prev: first.id }), signerA, CHAIN)), context({ round: 2 })).ok,
    ).toBe(true);
  });

  it('refuses bad orders without remembering them', () => {
    const book = new OrderBook(T);
    const { sig: _s, ...unsigned } = signOrder(fields(), signerA, CHAIN);
    expect(book.admit(unsigned, context()).ok).toBe(false);
    expect(book.size).toBe(0);
  });
});
