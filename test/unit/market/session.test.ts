/**
 * The message-driven market (session.ts participants, dso/market-sequencer.ts) played over an in-memory transport:
 * it must end where the in-process runBargaining ends, with the same trades; carry on without a silent participant;
 * stop every participant at a seal that does not add up; settle from signed deliveries; and bargain again after the
 * network check sent caps. The sequencer's checks of single bad messages are in test/unit/dso/market-sequencer.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import {
  type IntervalSummary,
  type MarketSecurity,
  MarketSequencer,
  type MarketSequencerOptions,
} from '../../../agent/dso/market-sequencer.js';
import { fromHex, toHex } from '../../../agent/identity/bytes.js';
import { type KeyPair, keyPairFromPrivateKey } from '../../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../../agent/ledger/block.js';
import type { RecordBody } from '../../../agent/ledger/records.js';
import type { Envelope } from '../../../agent/link/envelope.js';
import { createLogger, type Logger, silentLogger } from '../../../agent/logger.js';
import { type BargainingParticipant, DEFAULT_BARGAINING, runBargaining } from '../../../agent/market/bargaining.js';
import { normalizeCurve, type PriceResponseCurve } from '../../../agent/market/curve.js';
import type { SignedOrder } from '../../../agent/market/order.js';
import {
  type IntervalResult,
  MARKET_DELIVERY_KIND,
  MarketParticipant,
  parseSeal,
  type RoundSeal,
  type Seal,
  sealBody,
  signDelivery,
} from '../../../agent/market/session.js';
import { type MeteredDelivery, type Settlement, settleInterval } from '../../../agent/market/settlement.js';
import { portfolioCurve, randomPortfolio, seededRandom } from '../../../bench/market.js';

const CHAIN = 77;
const GRID = { importPrice: 300_000, exportPrice: 80_000 };
const IMBALANCE = 350_000;
const INTERVAL = Date.UTC(2031, 5, 1, 12);
const START = INTERVAL - 1_800_000;
const GATE_MS = 60_000;
const PHASE_MS = 5_000;

/** Test keys: they sign nothing outside this file. */
const KEYS: readonly KeyPair[] = Array.from({ length: 12 }, (_, i) =>
  keyPairFromPrivateKey(fromHex(`0x${(0x31 + i).toString(16).repeat(32)}`)),
);

function envelopeFrom(from: string, kind: string, body: Record<string, unknown>): Envelope {
  return {
    v: 1,
    id: '0x'.padEnd(34, '0'),
    kind,
    from,
    chainId: CHAIN,
    session: 1,
    seq: 1,
    time: 0,
    body,
    sig: '0x',
  } as unknown as Envelope;
}

/** A straight curve over the grid band: `lowWh` at the feed-in price, `highWh` at the import price. */
function line(lowWh: number, highWh: number): PriceResponseCurve {
  return normalizeCurve({
    interval: INTERVAL,
    points: [
      { price: GRID.exportPrice, netWh: lowWh },
      { price: GRID.importPrice, netWh: highWh },
    ],
  });
}

/** Two sellers and two buyers whose curves cross inside the band. */
const SMALL = [line(200, 1_500), line(-1_400, -300), line(100, 900), line(-1_000, -100)];

interface Member {
  /** Undefined: it has nothing to trade (answers `out`). */
  readonly curve: PriceResponseCurve | undefined;
  /** Listed by the DSO but never connected: receives no seal, sends no move. */
  readonly offline?: boolean;
  readonly delivery?: (interval: number) => MeteredDelivery | undefined;
}

interface NetOptions {
  /** Alters a seal on its way to the participants (after the sequencer cleared it). */
  readonly tamper?: (seal: Seal) => Seal;
  readonly security?: MarketSecurity;
  readonly maxAttempts?: number;
  readonly logger?: Logger;
}

interface Net {
  readonly keys: readonly KeyPair[];
  /** By member index; undefined for offline members. */
  readonly participants: readonly (MarketParticipant | undefined)[];
  readonly sequencer: MarketSequencer;
  /** The last final each participant reported, by anonym. */
  readonly finals: Map<string, IntervalResult>;
  /** Every final each participant reported, in order, by anonym. */
  readonly allFinals: Map<string, IntervalResult[]>;
  readonly settled: Map<string, { settlement: Settlement; own: readonly RecordBody[] }>;
  /** Seals as the participants received them. */
  readonly seals: Seal[];
  /** Moves and deliveries the sequencer refused, as `reason: detail`. */
  readonly refused: string[];
}

/** N participants and one sequencer joined by function calls; bodies pass through their JSON wire form. */
function market(members: readonly Member[], clock: ManualClock, options: NetOptions = {}): Net {
  const finals = new Map<string, IntervalResult>();
  const allFinals = new Map<string, IntervalResult[]>();
  const settled = new Map<string, { settlement: Settlement; own: readonly RecordBody[] }>();
  const seals: Seal[] = [];
  const refused: string[] = [];
  const keys = KEYS.slice(0, members.length);
  let sequencer: MarketSequencer | undefined;
  const participants = members.map((member, i) => {
    const key = keys[i] as KeyPair;
    if (member.offline === true) return undefined;
    return new MarketParticipant({
      chainId: CHAIN,
      signer: signerFromPrivateKey(key.privateKey, key.address),
      curve: async () => member.curve,
      logger: options.logger ?? silentLogger(),
      ...(member.delivery === undefined ? {} : { delivery: member.delivery }),
      send: async (_interval, kind, body) => {
        await Promise.resolve();
        const envelope = envelopeFrom(key.address, kind, JSON.parse(JSON.stringify(body)));
        const out =
          kind === MARKET_DELIVERY_KIND ? sequencer?.acceptDelivery(envelope) : sequencer?.acceptMove(envelope);
        if (out !== undefined && !out.ok) {
          refused.push(`${out.reason}: ${out.detail}`);
          throw new Error(`${out.reason}: ${out.detail}`);
        }
      },
      onFinal: (r) => {
        finals.set(key.address, r);
        allFinals.set(key.address, [...(allFinals.get(key.address) ?? []), r]);
      },
      onSettled: (settlement, own) => settled.set(key.address, { settlement, own }),
    });
  });
  const sequencerOptions: MarketSequencerOptions = {
    chainId: CHAIN,
    clock,
    logger: options.logger ?? silentLogger(),
    anonyms: () => keys.map((k) => k.address),
    prices: () => ({ grid: GRID, imbalancePrice: IMBALANCE }),
    publish: async (_interval, seal) => {
      const sent = options.tamper === undefined ? seal : options.tamper(seal);
      // Through the wire form, as the MQTT link carries it.
      const parsed = parseSeal(JSON.parse(JSON.stringify(sealBody(sent))));
      seals.push(parsed);
      await Promise.all(participants.map((p) => p?.onSeal(parsed)));
    },
    timing: { leadMs: 3_600_000, gateMs: GATE_MS, phaseMs: PHASE_MS },
    ...(options.security === undefined ? {} : { security: options.security }),
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
  };
  sequencer = new MarketSequencer(sequencerOptions);
  return { keys, participants, sequencer, finals, allFinals, settled, seals, refused };
}

/** Lets every pending promise chain run (the transport is all microtasks; setImmediate comes after them). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * Settles `work`, advancing the manual clock by `stepMs` whenever everything else has run and it is still pending
 * (the sequencer waiting out a phase). Returns the value and how many times the clock had to move.
 */
async function drive<T>(clock: ManualClock, work: Promise<T>, stepMs = PHASE_MS): Promise<{ value: T; steps: number }> {
  let done = false;
  void work.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  for (let steps = 0; steps < 2_000; steps++) {
    await flush();
    if (done) return { value: await work, steps };
    clock.advance(stepMs);
  }
  throw new Error('the market did not finish within 2000 clock steps');
}

function tradesOf(r: IntervalResult | undefined) {
  return (r?.trades ?? []).map((t) => [t.seller, t.buyer, t.qtyWh, t.price]);
}

function reference(curves: readonly PriceResponseCurve[], anonyms: readonly string[]) {
  const participants: BargainingParticipant[] = curves.map((curve, i) => ({
    anonym: anonyms[i] as BargainingParticipant['anonym'],
    curve,
  }));
  return runBargaining(participants, {
    chainId: CHAIN,
    interval: INTERVAL,
    grid: GRID,
    gateClosure: INTERVAL - GATE_MS,
    params: DEFAULT_BARGAINING,
  });
}

describe('message-driven market', () => {
  it('ends with the same trades as the in-process bargaining, every participant agreeing', async () => {
    const rnd = seededRandom(11);
    const curves = Array.from({ length: 8 }, () =>
      normalizeCurve(portfolioCurve(randomPortfolio(rnd), INTERVAL, GRID)),
    );
    const clock = new ManualClock(START);
    const net = market(
      curves.map((curve) => ({ curve })),
      clock,
    );
    const summary = await net.sequencer.runInterval(INTERVAL);
    const expected = reference(
      curves,
      net.keys.map((k) => k.address),
    );
    expect(summary.closedBy).toBe('no-check');
    expect(summary.attempts[0]?.rounds).toBe(expected.rounds);
    expect(summary.attempts[0]?.stable).toBe(expected.stable);
    expect(summary.attempts[0]?.tradedWh).toBe(expected.final.totals.tradedWh);
    expect(expected.final.trades.length).toBeGreaterThan(0);
    expect(net.finals.size).toBe(8);
    for (const [, r] of net.finals) {
      expect(tradesOf(r)).toEqual(expected.final.trades.map((t) => [t.seller, t.buyer, t.qtyWh, t.price]));
    }
    net.sequencer.stop();
  });

  it('seals each phase phaseMs after it opened when a participant never answers, and the others still trade', async () => {
    const clock = new ManualClock(START);
    const members: Member[] = [...SMALL.map((curve) => ({ curve })), { curve: line(-800, -800), offline: true }];
    const net = market(members, clock);
    const { value: summary, steps } = await drive(clock, net.sequencer.runInterval(INTERVAL));
    const attempt = summary.attempts[0];
    const phases = (attempt?.rounds ?? 0) * 2 + 1;
    // Every phase waited out the silent one: round 1's offers, then each round's bids and the next round's offers
    // (whose moves tell whether anyone's price moved).
    expect(steps).toBe(phases);
    expect(clock.now()).toBe(START + phases * PHASE_MS);
    expect(attempt?.participants).toBe(5);
    expect(net.refused).toEqual([]);
    // Without the silent one's moves the market plays exactly as the bargaining of the four that answered.
    const expected = reference(
      SMALL,
      net.keys.slice(0, 4).map((k) => k.address),
    );
    expect(expected.final.trades.length).toBeGreaterThan(0);
    expect(attempt?.rounds).toBe(expected.rounds);
    expect(net.finals.size).toBe(4);
    for (const key of net.keys.slice(0, 4)) {
      expect(tradesOf(net.finals.get(key.address))).toEqual(
        expected.final.trades.map((t) => [t.seller, t.buyer, t.qtyWh, t.price]),
      );
    }
    const silent = (net.keys[4] as KeyPair).address;
    const sealed = net.seals.flatMap((s) => (s.phase === 'offer' || s.phase === 'bid' ? s.orders : []));
    expect(sealed.some((o) => o.anonym === silent)).toBe(false);
    net.sequencer.stop();
  });

  it('stops expecting a participant that answers `out` in round 1 (no phase waits for it)', async () => {
    const clock = new ManualClock(START);
    const net = market([...SMALL.map((curve) => ({ curve })), { curve: undefined }], clock);
    let summary: IntervalSummary | undefined;
    void net.sequencer.runInterval(INTERVAL).then((s) => {
      summary = s;
    });
    await flush();
    // Finished on messages alone: the clock never moved.
    expect(summary?.closedBy).toBe('no-check');
    expect(clock.now()).toBe(START);
    expect(summary?.attempts[0]?.participants).toBe(4);
    const open = net.seals[0];
    expect(open?.phase === 'open' && open.participants.length).toBe(5);
    const out = (net.keys[4] as KeyPair).address;
    expect(net.finals.has(out)).toBe(false);
    expect(net.finals.size).toBe(4);
    expect(net.participants[4]?.stats()).toMatchObject({ attempts: 1, sent: 1, finals: 0, disputes: 0 });
    net.sequencer.stop();
  });

  for (const phase of ['bid', 'final'] as const) {
    it(`makes every participant dispute a ${phase} seal whose clearing hash was altered, and report no final`, async () => {
      const clock = new ManualClock(START);
      const lines: string[] = [];
      const logger = createLogger({ level: 'error', destination: { write: (l: string) => lines.push(l) } });
      const altered = `0x${'ab'.repeat(32)}`;
      let tampered = 0;
      const net = market(
        SMALL.map((curve) => ({ curve })),
        clock,
        {
          logger,
          tamper: (seal) => {
            if (seal.phase !== phase || tampered > 0) return seal;
            tampered++;
            return { ...seal, clearing: altered } as Seal;
          },
        },
      );
      // The sequencer goes on (nobody answers after a disputed bid seal: it waits the phase out and finalizes).
      const { value: summary } = await drive(clock, net.sequencer.runInterval(INTERVAL));
      expect(tampered).toBe(1);
      expect(summary.attempts).toHaveLength(1);
      expect(net.finals.size).toBe(0);
      for (const p of net.participants) expect(p?.stats()).toMatchObject({ disputes: 1, finals: 0 });
      for (const p of net.participants) expect(p?.result(INTERVAL)).toBeUndefined();
      const disputes = lines.map((l) => JSON.parse(l).msg as string).filter((m) => m.includes('disputed'));
      expect(disputes).toHaveLength(4);
      expect(disputes[0]).toContain(altered);
      net.sequencer.stop();
    });
  }

  it('settles the standing trades from signed deliveries: every trader gets the records concerning it', async () => {
    const clock = new ManualClock(START);
    const metered = new Map<string, MeteredDelivery>();
    // Member 1 (a buyer) has no meter records when asked: the sequencer waits for its delivery.
    const late = 1;
    const members: Member[] = [...SMALL, undefined].map((curve, i) => ({
      curve,
      delivery: () => (i === late ? undefined : metered.get((KEYS[i] as KeyPair).address)),
    }));
    const net = market(members, clock);
    const summary = await net.sequencer.runInterval(INTERVAL);
    expect(summary.standing).toBe(1);
    const traded = net.keys.filter((k) => (net.finals.get(k.address)?.own.length ?? 0) > 0);
    expect(traded.length).toBe(4);
    // What the meters saw: the sellers delivered 60 Wh less than they sold, the buyers took what they bought.
    net.keys.forEach((k, i) => {
      const r = net.finals.get(k.address);
      if (r === undefined) return;
      metered.set(k.address, { netExportWh: r.p2pNetWh > 0 ? r.p2pNetWh - 60 : r.p2pNetWh, evidence: [10 + i] });
    });

    const lateKey = net.keys[late] as KeyPair;
    const delivery = metered.get(lateKey.address) as MeteredDelivery;
    const signed = signDelivery(
      { anonym: lateKey.address, interval: INTERVAL, ...delivery },
      signerFromPrivateKey(lateKey.privateKey, lateKey.address),
      CHAIN,
    );
    const stranger = KEYS[11] as KeyPair;
    const forged = {
      ...signed,
      sig: toHex(signerFromPrivateKey(stranger.privateKey, stranger.address).signDigest(fromHex(signed.id))),
    };
    const deliver = (from: string, d: unknown) =>
      net.sequencer.acceptDelivery(envelopeFrom(from, MARKET_DELIVERY_KIND, { interval: INTERVAL, delivery: d }));

    const settling = net.sequencer.settle(INTERVAL);
    await flush();
    expect(net.seals.at(-1)?.phase).toBe('deliver');
    expect(net.settled.size).toBe(0);
    const refusal = deliver(lateKey.address, forged);
    expect(refusal).toMatchObject({ ok: false, reason: 'forged' });
    expect(refusal.ok ? '' : refusal.detail).toContain(`is not signed by ${lateKey.address}`);
    expect(deliver(lateKey.address, signed)).toEqual({ ok: true });
    const result = await settling;
    expect(result).toEqual({ deliveries: 4, expected: 4 });
    expect(net.refused).toEqual([]);
    expect(net.sequencer.stats().rejected).toEqual({ forged: 1 });

    const settleSeal = net.seals.at(-1);
    expect(settleSeal?.phase === 'settle' && settleSeal.deliveries.map((d) => d.anonym).sort()).toEqual(
      traded.map((k) => k.address).sort(),
    );
    const trades = net.finals.get(traded[0]?.address as string)?.trades ?? [];
    const direct = settleInterval({
      interval: INTERVAL,
      trades,
      delivery: (anonym) => metered.get(anonym),
      imbalancePrice: IMBALANCE,
    });
    expect(net.settled.size).toBe(4);
    for (const k of traded) {
      const got = net.settled.get(k.address);
      expect(got?.settlement).toEqual(direct);
      const concerning = direct.records.filter(
        (r) => r.seller === k.address || r.buyer === k.address || r.anonym === k.address,
      );
      expect(got?.own).toEqual(concerning);
      expect(got?.own.length).toBeGreaterThan(1);
      expect(got?.own.some((r) => r.kind === 'imbalance' && r.anonym === k.address)).toBe(true);
    }
    // Each seller fell 60 Wh short: it is paid for what it delivered, and its buyers took the 2 × 60 Wh from the
    // DSO's balancing.
    const seller = direct.balances.find((b) => b.anonym === (net.keys[0] as KeyPair).address);
    expect(seller?.tradedWh).toBe((seller?.scheduledWh ?? 0) - 60);
    expect(seller?.imbalanceWh).toBe(0);
    expect(direct.balances.reduce((sum, b) => sum + b.imbalanceWh, 0)).toBe(-120);
    // The one that did not trade is asked for nothing and settles nothing.
    expect(net.settled.has((net.keys[4] as KeyPair).address)).toBe(false);
    net.sequencer.stop();
  });

  describe('attempts after the network check', () => {
    /**
     * A network check that sends `sent(call)` caps on its call-th run. Each MGMC is its own anonym and reports a new
     * position with each final it reaches (the position's time: how many finals it has seen).
     */
    function security(sent: (call: number) => number) {
      const calls: number[] = [];
      const ref: { net?: Net } = {};
      const s: MarketSecurity = {
        mgmcOf: (anonym) => anonym,
        positionTime: (_interval, mgmc) => ref.net?.allFinals.get(mgmc)?.length,
        check: async (interval) => {
          calls.push(interval);
          const n = sent(calls.length);
          return { sent: n, secure: n === 0 };
        },
        pendingAcks: () => 0,
      };
      return { s, calls, ref };
    }

    function roundOrders(seals: readonly Seal[], attempt: number): SignedOrder[] {
      return seals
        .filter((s): s is RoundSeal => s.phase === 'bid' && s.attempt === attempt)
        .flatMap((s) => [...s.orders]);
    }

    it('bargains again when caps went out, and the second attempt stands', async () => {
      const clock = new ManualClock(START);
      const { s, calls, ref } = security((call) => (call === 1 ? 1 : 0));
      const net = market(
        SMALL.map((curve) => ({ curve })),
        clock,
        { security: s },
      );
      ref.net = net;
      const summary: IntervalSummary = await net.sequencer.runInterval(INTERVAL);
      expect(calls).toEqual([INTERVAL, INTERVAL]);
      expect(summary.closedBy).toBe('secure');
      expect(summary.standing).toBe(2);
      expect(summary.attempts.map((a) => [a.attempt, a.capsSent, a.secure])).toEqual([
        [1, 1, false],
        [2, 0, true],
      ]);
      const first = roundOrders(net.seals, 1);
      const second = roundOrders(net.seals, 2);
      expect(first.length).toBeGreaterThan(0);
      expect(second.length).toBeGreaterThan(0);
      expect(first.every((o) => o.attempt === undefined)).toBe(true);
      expect(second.every((o) => o.attempt === 2)).toBe(true);
      expect(net.seals.filter((x) => x.phase === 'open').map((x) => x.attempt)).toEqual([1, 2]);
      expect(net.finals.size).toBe(4);
      for (const [anonym, r] of net.finals) {
        expect(r.attempt).toBe(2);
        expect(r.orders.every((o) => o.attempt === 2)).toBe(true);
        expect(net.allFinals.get(anonym)?.map((f) => f.attempt)).toEqual([1, 2]);
      }
      net.sequencer.stop();
    });

    // A participant that disputed (or missed) attempt 2's final keeps attempt 1's result while the sequencer's attempt
    // 2 stands: it must neither deliver nor settle attempt 1's trades against the attempt-2 seals, and says so.
    it('settles only the trades of the attempt the settle seal names', async () => {
      const clock = new ManualClock(START);
      const { s, ref } = security((call) => (call === 1 ? 1 : 0));
      const metered = new Map<string, MeteredDelivery>();
      const net = market(
        SMALL.map((curve, i) => ({ curve, delivery: () => metered.get((KEYS[i] as KeyPair).address) })),
        clock,
        {
          security: s,
          // The sequencer's attempt-2 final does not add up for anyone: they all keep attempt 1's result.
          tamper: (seal) =>
            seal.phase === 'final' && seal.attempt === 2
              ? ({ ...seal, clearing: `0x${'ab'.repeat(32)}` } as Seal)
              : seal,
        },
      );
      ref.net = net;
      // Nobody reaches attempt 2's final, so no new position comes: the check waits positionWaitMs for them.
      const { value: summary } = await drive(clock, net.sequencer.runInterval(INTERVAL));
      expect(summary.standing).toBe(2);
      for (const [anonym, r] of net.finals) {
        expect(r.attempt).toBe(1);
        metered.set(anonym, { netExportWh: r.p2pNetWh, evidence: [1] });
      }
      const members = net.participants.filter((p): p is MarketParticipant => p !== undefined);
      const disputesBefore = members.map((p) => p.stats().disputes);
      const { value: outcome } = await drive(clock, net.sequencer.settle(INTERVAL));
      expect(net.seals.at(-1)).toMatchObject({ phase: 'settle', attempt: 2, deliveries: [] });
      expect(outcome).toMatchObject({ deliveries: 0 });
      expect(net.settled.size).toBe(0);
      const traders = members.filter((p) => (net.finals.get(p.anonym)?.own.length ?? 0) > 0);
      expect(traders.length).toBeGreaterThan(0);
      for (const p of traders) {
        // One for the deliver seal, one for the settle seal.
        expect(p.stats().disputes).toBe((disputesBefore[members.indexOf(p)] ?? 0) + 2);
      }
      net.sequencer.stop();
    });

    it('stops at maxAttempts when every check sends caps', async () => {
      const clock = new ManualClock(START);
      const { s, calls, ref } = security(() => 2);
      const net = market(
        SMALL.map((curve) => ({ curve })),
        clock,
        { security: s, maxAttempts: 2 },
      );
      ref.net = net;
      const summary = await net.sequencer.runInterval(INTERVAL);
      expect(calls).toHaveLength(2);
      expect(summary.closedBy).toBe('attempt-cap');
      expect(summary.attempts.map((a) => a.capsSent)).toEqual([2, 2]);
      expect(summary.standing).toBe(2);
      expect(net.seals.filter((x) => x.phase === 'open')).toHaveLength(2);
      for (const [, r] of net.finals) expect(r.attempt).toBe(2);
      net.sequencer.stop();
    });
  });
});
