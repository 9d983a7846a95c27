/**
 * The DSO's market sequencer (agent/dso/market-sequencer.ts) driven by hand: the test plays three anonyms and sends
 * their moves and deliveries itself, so that every bad message meets the sequencer in a known phase. Each must be
 * refused with its reason, counted once, and change nothing; the whole market with MarketParticipants is in
 * test/unit/market/session.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { type IntervalSummary, MarketSequencer, type MoveOutcome } from '../../../agent/dso/market-sequencer.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { type Signer, signerFromPrivateKey } from '../../../agent/ledger/block.js';
import type { Envelope } from '../../../agent/link/envelope.js';
import { createLogger } from '../../../agent/logger.js';
import { clearingHash, clearRound } from '../../../agent/market/clearing.js';
import { type OrderFields, type SignedOrder, signOrder } from '../../../agent/market/order.js';
import {
  MARKET_DELIVERY_KIND,
  MARKET_MOVE_KIND,
  type MoveBody,
  moveBody,
  type RoundSeal,
  type Seal,
  signDelivery,
} from '../../../agent/market/session.js';

const CHAIN = 77;
const GRID = { importPrice: 300_000, exportPrice: 80_000 };
const INTERVAL = Date.UTC(2031, 5, 1, 12);
const GATE_MS = 60_000;
const GATE = INTERVAL - GATE_MS;
const PHASE_MS = 5_000;

/** Test keys: they sign nothing outside this file. */
const [A, B, C, OUTSIDER] = [0x61, 0x62, 0x63, 0x64].map((b) =>
  keyPairFromPrivateKey(fromHex(`0x${b.toString(16).repeat(32)}`)),
) as [KeyPair, KeyPair, KeyPair, KeyPair];
const signer = (k: KeyPair): Signer => signerFromPrivateKey(k.privateKey, k.address);

function envelope(from: KeyPair, kind: string, body: unknown): Envelope {
  return {
    v: 1,
    id: '0x'.padEnd(34, '0'),
    kind,
    from: from.address,
    chainId: CHAIN,
    session: 1,
    seq: 1,
    time: 0,
    body,
    sig: '0x',
  } as unknown as Envelope;
}

function order(k: KeyPair, fields: Partial<OrderFields> = {}): SignedOrder {
  return signOrder(
    {
      anonym: k.address,
      interval: INTERVAL,
      side: 'offer',
      qtyWh: 500,
      price: 150_000,
      green: false,
      round: 1,
      expiry: GATE,
      ...fields,
    },
    signer(k),
    CHAIN,
  );
}

function move(fields: Partial<MoveBody> = {}): MoveBody {
  return { interval: INTERVAL, attempt: 1, round: 1, phase: 'offer', ...fields };
}

/** Lets every pending promise chain run (setImmediate comes after the microtasks). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A sequencer for the anonyms A, B and C whose seals the test reads; warnings land in `warnings`. */
function sequencer(clock: ManualClock, phaseMs = PHASE_MS) {
  const seals: Seal[] = [];
  const warnings: string[] = [];
  const seq = new MarketSequencer({
    chainId: CHAIN,
    clock,
    logger: createLogger({ level: 'warn', destination: { write: (l: string) => warnings.push(JSON.parse(l).msg) } }),
    anonyms: () => [A.address, B.address, C.address],
    prices: () => ({ grid: GRID, imbalancePrice: 350_000 }),
    publish: async (_interval, seal) => {
      seals.push(JSON.parse(JSON.stringify(seal)));
    },
    timing: { leadMs: 3_600_000, gateMs: GATE_MS, phaseMs },
  });
  const send = (from: KeyPair, body: MoveBody | Record<string, unknown>): MoveOutcome =>
    seq.acceptMove(envelope(from, MARKET_MOVE_KIND, moveBody(body as MoveBody)));
  return { seq, seals, warnings, send };
}

function reasonOf(outcome: MoveOutcome): string {
  return outcome.ok ? 'ok' : outcome.reason;
}

describe('MarketSequencer.acceptMove', () => {
  it('refuses each bad move with its reason, counts it once and keeps the phase open for the good one', async () => {
    const clock = new ManualClock(INTERVAL - 1_800_000);
    const { seq, seals, warnings, send } = sequencer(clock);
    const run = seq.runInterval(INTERVAL);
    await flush();
    expect(seals.map((s) => s.phase)).toEqual(['open']);

    const good = order(A);
    const tampered = { ...good, price: good.price + 1 };
    const otherSig = { ...good, sig: toHex(signer(B).signDigest(fromHex(good.id))) };
    const cases: [string, MoveOutcome, string][] = [
      ['malformed', send(A, { ...move(), phase: 'ask' }), 'move phase must be "offer" or "bid"'],
      ['malformed', send(A, { ...move(), round: 0 }), 'move round must be an integer >= 1'],
      ['unauthorized', send(OUTSIDER, move()), 'not a participant of this attempt'],
      ['forged', send(A, move({ order: order(B) })), `the order is ${B.address}'s, not the sender's`],
      ['malformed', send(A, move({ order: tampered })), "id is not the digest of the order's content"],
      ['forged', send(A, move({ order: otherSig })), 'the signature is not the anonym key'],
      ['late', send(A, move({ phase: 'bid' })), 'that phase is not being collected'],
      ['late', send(A, move({ round: 2 })), 'that phase is not being collected'],
      ['late', send(A, move({ attempt: 2 })), 'that phase is not being collected'],
      ['late', send(A, move({ interval: INTERVAL + 900_000 })), 'that phase is not being collected'],
      ['wrong-round', send(A, move({ order: order(A, { attempt: 2 }) })), 'the order is for another attempt or side'],
      ['wrong-round', send(A, move({ order: order(A, { side: 'bid' }) })), 'the order is for another attempt or side'],
      ['wrong-round', send(A, move({ order: order(A, { round: 2 }) })), 'for round 2, the market collects round 1'],
      ['rule-break', send(A, move({ order: order(A, { price: 400_000 }) })), 'outside the grid band'],
    ];
    for (const [reason, outcome, detail] of cases) {
      expect(reasonOf(outcome), detail).toBe(reason);
      expect(outcome.ok ? '' : outcome.detail).toContain(detail);
    }
    expect(seq.stats().moves).toBe(0);

    expect(send(A, move({ order: good }))).toEqual({ ok: true });
    const replay = send(A, move({ order: good }));
    expect(reasonOf(replay)).toBe('replay');
    expect(replay.ok ? '' : replay.detail).toContain('a move for this phase was already taken');
    expect(reasonOf(send(A, move()))).toBe('replay');

    expect(seq.stats()).toMatchObject({
      moves: 1,
      rejected: { malformed: 3, unauthorized: 1, forged: 2, late: 4, 'wrong-round': 3, 'rule-break': 1, replay: 2 },
    });
    // Every refusal is logged with what was wrong.
    expect(warnings).toHaveLength(cases.length + 2);
    expect(warnings.every((w) => w.startsWith('market message rejected: '))).toBe(true);

    // Only the good order reaches the seal, once B and C have answered.
    expect(send(B, move())).toEqual({ ok: true });
    expect(seals).toHaveLength(1);
    expect(send(C, move())).toEqual({ ok: true });
    await flush();
    const offers = seals[1] as RoundSeal;
    expect(offers).toMatchObject({ phase: 'offer', round: 1, attempt: 1 });
    expect(offers.orders.map((o) => o.id)).toEqual([good.id]);
    expect(seq.stats().moves).toBe(3);
    // Left collecting round 1's bids: stop() does not end the run (see the it.fails below), so it is not awaited.
    seq.stop();
    void run;
  });

  it('keeps both orders of an anonym that offers and bids in one round, and the clearing voids both', async () => {
    const clock = new ManualClock(INTERVAL - 1_800_000);
    const { seq, seals, send } = sequencer(clock);
    const run = seq.runInterval(INTERVAL);
    await flush();
    const offerA = order(A, { qtyWh: 400, price: 120_000 });
    const offerC = order(C, { qtyWh: 400, price: 130_000 });
    expect(send(A, move({ order: offerA }))).toEqual({ ok: true });
    expect(send(B, move())).toEqual({ ok: true });
    expect(send(C, move({ order: offerC }))).toEqual({ ok: true });
    await flush();
    const bidA = order(A, { side: 'bid', qtyWh: 300, price: 200_000 });
    const bidB = order(B, { side: 'bid', qtyWh: 300, price: 200_000 });
    expect(send(A, move({ phase: 'bid', order: bidA }))).toEqual({ ok: true });
    expect(send(B, move({ phase: 'bid', order: bidB }))).toEqual({ ok: true });
    expect(send(C, move({ phase: 'bid' }))).toEqual({ ok: true });
    await flush();
    const bids = seals[2] as RoundSeal;
    expect(bids.phase).toBe('bid');
    expect(bids.orders.map((o) => o.id).sort()).toEqual([offerA.id, offerC.id, bidA.id, bidB.id].sort());
    const clearing = clearRound(bids.orders, { interval: INTERVAL, round: 1 });
    expect(bids.clearing).toBe(clearingHash(clearing));
    // A's two orders are void: B buys from C only.
    expect(clearing.trades.map((t) => [t.seller, t.buyer, t.qtyWh])).toEqual([[C.address, B.address, 300]]);
    for (const k of [A, B, C]) expect(send(k, move({ round: 2, moved: 'hold' }))).toEqual({ ok: true });
    const summary = await run;
    expect(summary.attempts[0]).toMatchObject({ rounds: 1, stable: true, trades: 1, tradedWh: 300 });
    expect(seals.at(-1)).toEqual({
      phase: 'final',
      interval: INTERVAL,
      attempt: 1,
      round: 1,
      clearing: clearingHash(clearing),
      stable: true,
    });
    expect(seq.stats().rejected).toEqual({});
    seq.stop();
  });

  // BUG (market-sequencer.ts, runAttempt()): stop() resolves the phase being collected, but the round loop checks
  // `stopped` only at its top, after the next collect. Stopped while collecting bids, the sequencer still publishes that
  // round's bid seal, opens the next offer phase with a fresh phaseMs timer (stop() already cancelled the timers, so a
  // ManualClock run hangs until advanced), then publishes a final (the check before it looks at the gate, not at
  // `stopped`) and reports the attempt as standing, closed by 'no-check'.
  it('publishes nothing more once stopped and ends the interval at once', async () => {
    const clock = new ManualClock(INTERVAL - 1_800_000);
    const { seq, seals, send } = sequencer(clock);
    let summary: IntervalSummary | undefined;
    void seq.runInterval(INTERVAL).then((s) => {
      summary = s;
    });
    await flush();
    for (const k of [A, B, C]) send(k, move());
    await flush();
    expect(seals.map((s) => s.phase)).toEqual(['open', 'offer']);
    seq.stop();
    await flush();
    expect(seals.map((s) => s.phase)).toEqual(['open', 'offer']);
    expect(summary).toMatchObject({ attempts: [], standing: undefined });
  });

  it('refuses an order that arrives after the gate closure', async () => {
    const clock = new ManualClock(GATE - 1_000);
    // A phase longer than the time left: the gate closes while round 1's offers are collected.
    const { seq, seals, send } = sequencer(clock, 600_000);
    let summary: IntervalSummary | undefined;
    const run = seq.runInterval(INTERVAL).then((s) => {
      summary = s;
    });
    await flush();
    expect(send(B, move())).toEqual({ ok: true });
    clock.advance(2_000);
    const late = send(A, move({ order: order(A) }));
    expect(reasonOf(late)).toBe('closed-interval');
    expect(late.ok ? '' : late.detail).toContain(`gate closed at ${GATE}`);
    expect(seq.stats()).toMatchObject({ moves: 1, rejected: { 'closed-interval': 1 } });
    clock.advance(600_000);
    await run;
    // Nothing stands: no offer, bid or final seal went out after the gate.
    expect(seals.map((s) => s.phase)).toEqual(['open']);
    expect(summary?.attempts).toEqual([]);
    expect(summary?.standing).toBeUndefined();
  });

  // BUG (market-sequencer.ts, run()): runAttempt returns undefined both when nobody may trade and when the
  // gate closed during the attempt; run() reports 'no-participants' for any first attempt that returned undefined,
  // so an interval whose three anonyms were bargaining when the gate closed is logged as "closed by no-participants".
  it('names the gate as what closed an interval whose first attempt ran past it', async () => {
    const clock = new ManualClock(GATE - 1_000);
    const { seq, send } = sequencer(clock, 600_000);
    const run = seq.runInterval(INTERVAL);
    await flush();
    expect(send(A, move())).toEqual({ ok: true });
    clock.advance(600_000);
    const summary = await run;
    expect(summary.closedBy).toBe('gate');
  });

  it('closes with no-participants when no anonym may trade', async () => {
    const clock = new ManualClock(INTERVAL - 1_800_000);
    const seals: Seal[] = [];
    const seq = new MarketSequencer({
      chainId: CHAIN,
      clock,
      logger: createLogger({ level: 'silent' }),
      anonyms: () => [],
      prices: () => ({ grid: GRID, imbalancePrice: 350_000 }),
      publish: async (_interval, seal) => {
        seals.push(seal);
      },
    });
    const summary = await seq.runInterval(INTERVAL);
    expect(summary).toEqual({ interval: INTERVAL, attempts: [], standing: undefined, closedBy: 'no-participants' });
    expect(seals).toEqual([]);
  });
});

describe('MarketSequencer.acceptDelivery', () => {
  /** Round 1: A offers, B bids, C has nothing; round 2's moves all hold, so round 1 stands. A sells B 500 Wh. */
  async function traded() {
    const clock = new ManualClock(INTERVAL - 1_800_000);
    const s = sequencer(clock);
    const run = s.seq.runInterval(INTERVAL);
    await flush();
    s.send(A, move({ order: order(A) }));
    s.send(B, move());
    s.send(C, move());
    await flush();
    s.send(A, move({ phase: 'bid' }));
    s.send(B, move({ phase: 'bid', order: order(B, { side: 'bid', qtyWh: 800, price: 160_000 }) }));
    s.send(C, move({ phase: 'bid' }));
    await flush();
    for (const k of [A, B, C]) s.send(k, move({ round: 2, moved: 'hold' }));
    const summary = await run;
    return { ...s, clock, summary };
  }

  const delivery = (k: KeyPair, netExportWh: number) =>
    signDelivery({ anonym: k.address, interval: INTERVAL, netExportWh, evidence: [7] }, signer(k), CHAIN);

  it('takes one signed delivery from each trader and refuses the rest with a reason', async () => {
    const { seq, seals, summary } = await traded();
    expect(summary).toMatchObject({ closedBy: 'no-check', standing: 1 });
    expect(summary.attempts[0]).toMatchObject({ rounds: 1, stable: true, trades: 1, tradedWh: 500 });
    expect(seals.at(-1)).toMatchObject({ phase: 'final', round: 1, stable: true });
    const deliver = (from: KeyPair, body: unknown) => seq.acceptDelivery(envelope(from, MARKET_DELIVERY_KIND, body));
    const fromA = delivery(A, 480);

    expect(reasonOf(deliver(A, { interval: INTERVAL, delivery: fromA }))).toBe('late');
    const settling = seq.settle(INTERVAL);
    await flush();
    expect(seals.at(-1)).toEqual({ phase: 'deliver', interval: INTERVAL, attempt: 1 });
    const signedByB = { ...fromA, sig: toHex(signer(B).signDigest(fromHex(fromA.id))) };
    const cases: [string, MoveOutcome, string][] = [
      ['forged', deliver(A, { interval: INTERVAL, delivery: signedByB }), `is not signed by ${A.address}`],
      ['forged', deliver(A, { interval: INTERVAL, delivery: { ...fromA, netExportWh: 500 } }), 'not the digest'],
      ['forged', deliver(B, { interval: INTERVAL, delivery: fromA }), `is ${A.address}'s or for another interval`],
      ['unauthorized', deliver(C, { interval: INTERVAL, delivery: delivery(C, 0) }), 'it did not trade'],
      ['late', deliver(A, { interval: INTERVAL + 900_000, delivery: fromA }), 'no settlement is collecting'],
    ];
    for (const [reason, outcome, detail] of cases) {
      expect(reasonOf(outcome), detail).toBe(reason);
      expect(outcome.ok ? '' : outcome.detail).toContain(detail);
    }
    expect(deliver(A, { interval: INTERVAL, delivery: fromA })).toEqual({ ok: true });
    expect(reasonOf(deliver(A, { interval: INTERVAL, delivery: fromA }))).toBe('replay');
    const fromB = delivery(B, -500);
    expect(deliver(B, { interval: INTERVAL, delivery: fromB })).toEqual({ ok: true });
    expect(await settling).toEqual({ deliveries: 2, expected: 2 });
    expect(seals.at(-1)).toEqual({
      phase: 'settle',
      interval: INTERVAL,
      attempt: 1,
      imbalancePrice: 350_000,
      deliveries: [fromA, fromB].sort((x, y) => (x.anonym.toLowerCase() < y.anonym.toLowerCase() ? -1 : 1)),
    });
    expect(seq.stats()).toMatchObject({
      settled: 1,
      rejected: { late: 2, forged: 3, unauthorized: 1, replay: 1 },
    });
    seq.stop();
  });

  it('seals what came back after deliveryWaitMs when a trader sends nothing', async () => {
    const { seq, seals, clock } = await traded();
    const settling = seq.settle(INTERVAL);
    await flush();
    seq.acceptDelivery(envelope(A, MARKET_DELIVERY_KIND, { interval: INTERVAL, delivery: delivery(A, 500) }));
    await flush();
    expect(seals.at(-1)?.phase).toBe('deliver');
    clock.advance(60_000);
    expect(await settling).toEqual({ deliveries: 1, expected: 2 });
    const settle = seals.at(-1);
    expect(settle?.phase === 'settle' && settle.deliveries.map((d) => d.anonym)).toEqual([A.address]);
    seq.stop();
  });

  it('asks for nothing when the interval had no trades', async () => {
    const clock = new ManualClock(INTERVAL - 1_800_000);
    const { seq, seals, send } = sequencer(clock);
    const run = seq.runInterval(INTERVAL);
    await flush();
    for (const phase of ['offer', 'bid'] as const) {
      for (const k of [A, B, C]) send(k, move({ phase }));
      await flush();
    }
    for (const k of [A, B, C]) send(k, move({ round: 2, moved: 'hold' }));
    expect((await run).attempts[0]?.trades).toBe(0);
    const before = seals.length;
    expect(await seq.settle(INTERVAL)).toBeUndefined();
    expect(seals).toHaveLength(before);
    seq.stop();
  });
});
