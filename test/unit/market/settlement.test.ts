/** Settlement after delivery: trade payments at the trade price, deviations at the imbalance price, the checker. */
import { describe, expect, it } from 'vitest';
import { fromHex } from '../../../agent/identity/bytes.js';
import { toChecksumAddress } from '../../../agent/identity/keys.js';
import type { LedgerRecord, RecordBody } from '../../../agent/ledger/records.js';
import { validateBody } from '../../../agent/ledger/records.js';
import { clearRound, type Trade } from '../../../agent/market/clearing.js';
import { buildOrder, type Side } from '../../../agent/market/order.js';
import {
  checkSettlement,
  type DeliverySource,
  deliveryFromMeterBatches,
  energyAmount,
  meterBatchDelivery,
  SettlementError,
  type SettlementInput,
  settleInterval,
  settlementId,
} from '../../../agent/market/settlement.js';
import {
  encodeReadingBatch,
  meterAddressFromPrivateKey,
  meterBatchRecordBody,
  signReadingBatch,
} from '../../../firmware-bridge/batch.js';

const CHAIN = 4711;
const T = Date.UTC(2025, 5, 1, 12);
const HOUR = 3_600_000;
const anon = (i: number) => toChecksumAddress(`0x${i.toString(16).padStart(40, '0')}`);
const A = anon(1);
const B = anon(2);
const C = anon(3);
const IMBALANCE = 200_000;

function order(who: string, side: Side, qtyWh: number, price: number) {
  return buildOrder(
    { anonym: who as ReturnType<typeof anon>, interval: T, side, qtyWh, price, green: false, round: 1, expiry: T },
    CHAIN,
  );
}

/** A sells 1000 Wh to B at 150 000 micro-units per kWh. */
const ONE_TRADE = clearRound([order(A, 'offer', 1000, 150_000), order(B, 'bid', 1000, 200_000)], {
  interval: T,
  round: 1,
}).trades;

function metered(values: Record<string, number>): DeliverySource {
  return (anonym) => {
    const v = values[anonym];
    return v === undefined ? undefined : { netExportWh: v, evidence: [anonym === A ? 11 : anonym === B ? 12 : 13] };
  };
}

function input(trades: readonly Trade[], values: Record<string, number>): SettlementInput {
  return { interval: T, trades, delivery: metered(values), imbalancePrice: IMBALANCE };
}

const balance = (s: ReturnType<typeof settleInterval>, who: string) => s.balances.find((b) => b.anonym === who);
const tradeSum = (s: ReturnType<typeof settleInterval>) => s.balances.reduce((sum, b) => sum + b.tradeAmount, 0);

describe('settleInterval', () => {
  it('pays exact delivery at the trade price with no imbalance', () => {
    expect(ONE_TRADE).toHaveLength(1);
    const s = settleInterval(input(ONE_TRADE, { [A]: 1000, [B]: -1000 }));
    const trade = s.records.find((r) => r.kind === 'trade') as RecordBody;
    expect(trade).toMatchObject({ trade: ONE_TRADE[0]?.id, deliveredWh: 1000, amount: 150_000, seller: A, buyer: B });
    expect(balance(s, A)).toMatchObject({ tradeAmount: 150_000, imbalanceWh: 0, imbalanceAmount: 0, total: 150_000 });
    expect(balance(s, B)).toMatchObject({ tradeAmount: -150_000, imbalanceWh: 0, total: -150_000 });
    expect(tradeSum(s)).toBe(0);
    for (const r of s.records) {
      validateBody('settlement', r); // the ledger's required fields
      expect(r.id).toBe(settlementId(r));
    }
  });

  it('pays only what a short seller delivered; the buyer pays the imbalance price for the rest it took', () => {
    const s = settleInterval(input(ONE_TRADE, { [A]: 800, [B]: -1000 }));
    expect(s.records.find((r) => r.kind === 'trade')).toMatchObject({ deliveredWh: 800, amount: 120_000 });
    expect(balance(s, A)).toMatchObject({ scheduledWh: 1000, tradedWh: 800, imbalanceWh: 0, total: 120_000 });
    // 200 Wh from the DSO's balancing at 0.2 per kWh = 40 000 micro-units.
    expect(balance(s, B)).toMatchObject({ imbalanceWh: -200, imbalanceAmount: -40_000, total: -160_000 });
    expect(tradeSum(s)).toBe(0);
    expect(s.records.find((r) => r.kind === 'imbalance' && r.anonym === B)).toMatchObject({
      trade: 'imbalance',
      meteredWh: -1000,
      tradedWh: -800,
      deliveredWh: -200,
      amount: -40_000,
      price: IMBALANCE,
    });
  });

  it('pays an over-delivering seller the trade for the traded energy and the imbalance price for the surplus', () => {
    const s = settleInterval(input(ONE_TRADE, { [A]: 1200, [B]: -1000 }));
    expect(s.records.find((r) => r.kind === 'trade')).toMatchObject({ deliveredWh: 1000, amount: 150_000 });
    expect(balance(s, A)).toMatchObject({ imbalanceWh: 200, imbalanceAmount: 40_000, total: 190_000 });
    expect(balance(s, B)).toMatchObject({ imbalanceWh: 0, total: -150_000 });
    expect(tradeSum(s)).toBe(0);
  });

  it('limits a trade to what the buyer took, splits a seller over its trades pro rata, and sums to zero', () => {
    const trades = clearRound(
      [order(A, 'offer', 600, 150_000), order(C, 'offer', 400, 150_000), order(B, 'bid', 1000, 200_000)],
      { interval: T, round: 1 },
    ).trades;
    const s = settleInterval(input(trades, { [A]: 300, [C]: 400, [B]: -900 }));
    const byseller = (who: string) => s.records.find((r) => r.kind === 'trade' && r.seller === who);
    expect(byseller(A)).toMatchObject({ deliveredWh: 300, amount: 45_000 });
    expect(byseller(C)).toMatchObject({ deliveredWh: 360, amount: 54_000 });
    // B took 900: 540 from A's trade (only 300 came) and 360 from C's (400 came): 660 delivered, 240 from balancing.
    expect(balance(s, C)).toMatchObject({ tradedWh: 360, imbalanceWh: 40 });
    expect(tradeSum(s)).toBe(0);
    const imbalanceWh = s.balances.reduce((sum, b) => sum + b.imbalanceWh, 0);
    expect(imbalanceWh).toBe(300 + 400 - 900); // the community's net exchange with the grid
  });

  it('records the meter evidence of both sides on trades and each side on its imbalance', () => {
    const s = settleInterval(input(ONE_TRADE, { [A]: 1000, [B]: -1000 }));
    expect(s.records.find((r) => r.kind === 'trade')?.evidence).toEqual([11, 12]);
    expect(s.records.find((r) => r.kind === 'imbalance' && r.anonym === A)?.evidence).toEqual([11]);
  });

  it('refuses to settle without a trading side’s metering, naming the anonym', () => {
    expect(() => settleInterval(input(ONE_TRADE, { [A]: 1000 }))).toThrow(
      new RegExp(`no metered delivery for anonym ${B}`),
    );
  });

  it('rounds amounts half away from zero in integers', () => {
    expect(energyAmount(1, 1500)).toBe(2);
    expect(energyAmount(-1, 1500)).toBe(-2);
    expect(energyAmount(1, 1499)).toBe(1);
  });
});

describe('checkSettlement', () => {
  const inp = input(ONE_TRADE, { [A]: 800, [B]: -1000 });
  const claimed = settleInterval(inp).records;

  it('accepts the settlement it recomputes', () => {
    expect(checkSettlement(claimed, inp)).toEqual({ ok: true });
  });

  it('catches a tampered amount, with or without a recomputed id', () => {
    const tampered = claimed.map((r) => (r.kind === 'trade' ? { ...r, amount: 150_000 } : r));
    const verdict = checkSettlement(tampered, inp);
    expect(verdict.ok).toBe(false);
    const problems = (verdict as { problems: readonly string[] }).problems;
    expect(problems).toContain(
      `settlement of trade ${ONE_TRADE[0]?.id}: id ${claimed[0]?.id} is not its content's digest`,
    );
    expect(problems).toContain(`settlement of trade ${ONE_TRADE[0]?.id}: amount is 150000, recomputed 120000`);
    const reId = tampered.map((r) => ({ ...r, id: settlementId(r) }));
    expect(checkSettlement(reId, inp)).toEqual({
      ok: false,
      problems: [`settlement of trade ${ONE_TRADE[0]?.id}: amount is 150000, recomputed 120000`],
    });
  });

  it('catches a settlement made on other metering (evidence that says otherwise) and a missing record', () => {
    const other = settleInterval(input(ONE_TRADE, { [A]: 1000, [B]: -1000 })).records;
    const verdict = checkSettlement(other, inp) as { ok: false; problems: readonly string[] };
    expect(verdict.problems).toContain(`settlement of trade ${ONE_TRADE[0]?.id}: deliveredWh is 1000, recomputed 800`);
    const missing = checkSettlement(claimed.slice(1), inp) as { ok: false; problems: readonly string[] };
    expect(missing.problems.some((p) => p.endsWith('is missing'))).toBe(true);
  });
});

describe('deliveryFromMeterBatches', () => {
  const METER_KEY = fromHex(`0x${'44'.repeat(32)}`);
  const METER = meterAddressFromPrivateKey(METER_KEY);
  const QUARTER = 900_000;

  /** A signed batch of register samples every 15 min from `start`, as the ledger stores it. */
  function batch(seq: number, counter: number, start: number, samples: [number, number][], key = METER_KEY) {
    const payload = encodeReadingBatch({
      meter: METER,
      counter,
      flags: 0,
      startMs: start,
      intervalMs: QUARTER,
      channels: ['importWh', 'exportWh', 'powerW'],
      samples: samples.map(([imp, exp]) => [imp, exp, 0]),
    });
    const body = meterBatchRecordBody(payload, signReadingBatch(payload, key));
    return { seq, time: start, type: 'meter-batch', body } as LedgerRecord;
  }

  // Registers (import, export): exporting 250 Wh per quarter hour from 12:00, importing 100 from 13:00.
  const records = [
    batch(5, 1, T - QUARTER, [
      [1000, 5000],
      [1000, 5000],
      [1000, 5250],
    ]),
    batch(9, 2, T + 2 * QUARTER, [
      [1000, 5500],
      [1000, 5750],
      [1100, 5750],
    ]),
  ];

  it('takes the registers at the boundaries and names the batches as evidence', () => {
    expect(deliveryFromMeterBatches(records, { meter: METER, start: T, end: T + HOUR })).toEqual({
      netExportWh: 650,
      evidence: [5, 9],
    });
  });

  it('interpolates a register between samples', () => {
    // 12:07:30 lies half way between 12:00 (5000) and 12:15 (5250).
    const d = deliveryFromMeterBatches(records, { meter: METER, start: T + QUARTER / 2, end: T + HOUR });
    expect(d.netExportWh).toBe(5750 - 5125 - 100);
    expect(d.evidence).toEqual([5, 9]);
  });

  it('feeds a settlement through meterBatchDelivery', () => {
    const source = meterBatchDelivery(records, new Map([[A, METER]]), HOUR);
    expect(source(A, T)).toEqual({ netExportWh: 650, evidence: [5, 9] });
    expect(source(B, T)).toBeUndefined();
  });

  it('refuses a batch signed by another key and an interval it cannot bracket', () => {
    const forged = [
      records[0] as LedgerRecord,
      batch(9, 2, T + 2 * QUARTER, [[1000, 9999]], fromHex(`0x${'55'.repeat(32)}`)),
    ];
    expect(() => deliveryFromMeterBatches(forged, { meter: METER, start: T, end: T + HOUR })).toThrow(
      /meter-batch record 9 .*signed by/,
    );
    expect(() => deliveryFromMeterBatches(records, { meter: METER, start: T, end: T + 2 * HOUR })).toThrow(
      SettlementError,
    );
  });
});
