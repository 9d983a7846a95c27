/**
 * The message-driven market (session.ts participants, dso/market-sequencer.ts) played over an in-memory transport:
 * it must end where the in-process runBargaining ends, with the same trades, and refuse bad moves with a reason.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { MarketSequencer } from '../../../agent/dso/market-sequencer.js';
import { generateKeyPair } from '../../../agent/identity/keys.js';
import { signerFromPrivateKey } from '../../../agent/ledger/block.js';
import type { Envelope } from '../../../agent/link/envelope.js';
import { silentLogger } from '../../../agent/logger.js';
import { type BargainingParticipant, DEFAULT_BARGAINING, runBargaining } from '../../../agent/market/bargaining.js';
import { normalizeCurve, type PriceResponseCurve } from '../../../agent/market/curve.js';
import {
  type IntervalResult,
  MarketParticipant,
  parseSeal,
  type Seal,
  sealBody,
} from '../../../agent/market/session.js';
import { portfolioCurve, randomPortfolio, seededRandom } from '../../../bench/market.js';

const CHAIN = 77;
const GRID = { importPrice: 300_000, exportPrice: 80_000 };
const INTERVAL = Date.UTC(2031, 5, 1, 12);

function envelopeFrom(from: string, body: Record<string, unknown>): Envelope {
  return {
    v: 1,
    id: '0x'.padEnd(34, '0'),
    kind: 'market-move',
    from,
    chainId: CHAIN,
    session: 1,
    seq: 1,
    time: 0,
    body,
    sig: '0x',
  } as unknown as Envelope;
}

interface Net {
  participants: MarketParticipant[];
  sequencer: MarketSequencer;
  finals: Map<string, IntervalResult>;
  seals: Seal[];
}

function market(curves: readonly PriceResponseCurve[], clock: ManualClock): Net {
  const finals = new Map<string, IntervalResult>();
  const seals: Seal[] = [];
  const participants: MarketParticipant[] = [];
  let sequencer: MarketSequencer | undefined;
  const keys = curves.map(() => generateKeyPair());
  keys.forEach((key, i) => {
    participants.push(
      new MarketParticipant({
        chainId: CHAIN,
        signer: signerFromPrivateKey(key.privateKey, key.address),
        curve: async () => curves[i],
        logger: silentLogger(),
        send: async (_interval, _kind, body) => {
          await Promise.resolve();
          const out = sequencer?.acceptMove(envelopeFrom(key.address, body));
          if (out !== undefined && !out.ok) throw new Error(`${out.reason}: ${out.detail}`);
        },
        onFinal: (r) => finals.set(key.address, r),
      }),
    );
  });
  sequencer = new MarketSequencer({
    chainId: CHAIN,
    clock,
    logger: silentLogger(),
    anonyms: () => keys.map((k) => k.address),
    prices: () => ({ grid: GRID, imbalancePrice: 350_000 }),
    publish: async (_interval, seal) => {
      // Through the wire form, as the MQTT link carries it.
      const parsed = parseSeal(JSON.parse(JSON.stringify(sealBody(seal))));
      seals.push(parsed);
      await Promise.all(participants.map((p) => p.onSeal(parsed)));
    },
    timing: { leadMs: 3_600_000, gateMs: 60_000 },
  });
  return { participants, sequencer, finals, seals };
}

describe('message-driven market', () => {
  it('ends with the same trades as the in-process bargaining, every participant agreeing', async () => {
    const rnd = seededRandom(11);
    const curves = Array.from({ length: 8 }, () =>
      normalizeCurve(portfolioCurve(randomPortfolio(rnd), INTERVAL, GRID)),
    );
    const clock = new ManualClock(INTERVAL - 1_800_000);
    const net = market(curves, clock);
    const summary = await net.sequencer.runInterval(INTERVAL);
    const participants: BargainingParticipant[] = net.participants.map((p, i) => ({
      anonym: p.anonym,
      curve: curves[i] as PriceResponseCurve,
    }));
    const reference = runBargaining(participants, {
      chainId: CHAIN,
      interval: INTERVAL,
      grid: GRID,
      gateClosure: INTERVAL - 60_000,
      params: DEFAULT_BARGAINING,
    });
    expect(summary.closedBy).toBe('no-check');
    expect(summary.attempts[0]?.rounds).toBe(reference.rounds);
    expect(summary.attempts[0]?.stable).toBe(reference.stable);
    expect(summary.attempts[0]?.tradedWh).toBe(reference.final.totals.tradedWh);
    expect(reference.final.trades.length).toBeGreaterThan(0);
    expect(net.finals.size).toBe(8);
    for (const [, r] of net.finals) {
      expect(r.trades.map((t) => [t.seller, t.buyer, t.qtyWh, t.price])).toEqual(
        reference.final.trades.map((t) => [t.seller, t.buyer, t.qtyWh, t.price]),
      );
    }
    net.sequencer.stop();
  });
});
