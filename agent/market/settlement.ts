/**
 * Settlement after delivery (DESIGN.md section 2, stage 4): the trades of an interval are compared with what the
 * meters saw; delivered energy is paid at the trade price, deviations at the DSO's imbalance price.
 *
 * The rule, per interval, for every anonym that traded (S its scheduled net export, D its metered net export):
 * 1. What a seller delivered into its trades is D clamped to [0, Σ its sells], split over its sells in proportion to
 *    their quantities; what a buyer took from its trades is −D clamped to [0, Σ its buys], split over its buys the
 *    same way (integer Wh by largest remainder, ties to the smaller trade id).
 * 2. A trade's delivered energy is the smaller of the two shares: energy passes from seller to buyer only when one
 *    sent it and the other took it. The buyer pays the seller deliveredWh × price.
 * 3. Whatever an anonym's meter saw beyond its delivered trades (D − delivered sells + delivered buys) it exchanged
 *    with the DSO's balancing and is settled at the imbalance price: positive (surplus fed in) is paid by the DSO,
 *    negative (energy taken beyond what its trades delivered) is paid to the DSO. Every Wh is paid once, by whoever
 *    physically took it: a seller that falls short loses the revenue, and the buyer that took the shortfall from the
 *    grid pays the imbalance price for it.
 * So the trade payments between anonyms sum to zero, and each anonym's imbalance is with the DSO alone.
 *
 * Amounts are integers in micro-units of currency: Wh × (micro-units per kWh) / 1000, rounded half away from zero.
 * Records carry `evidence`: the ledger seqs of the meter records behind the metered figures, so the counterparty and
 * the DSO recompute every number (checkSettlement) from the trades and those records.
 */
import { createHash } from 'node:crypto';
import { BatchFlag, decodeReadingBatch } from '../../firmware-bridge/batch.js';
import { fromHex, utf8 } from '../identity/bytes.js';
import { type CanonicalValue, canonicalBytes } from '../ledger/canonical.js';
import { checkMeterBatch, METER_BATCH_FORMAT_V1 } from '../ledger/meter-batch.js';
import type { LedgerRecord, RecordBody } from '../ledger/records.js';
import { apportion, type Trade } from './clearing.js';

export const SETTLEMENT_TAG = 'mgmc/settlement/v1';
/** The `trade` field of imbalance records (the records schema requires one; an imbalance settles no single trade). */
export const IMBALANCE_TRADE = 'imbalance';

/** What the meters saw of one anonym's MGMC at its connection in one interval. */
export interface MeteredDelivery {
  /** Net energy sent to the grid, Wh: > 0 exported, < 0 imported. */
  readonly netExportWh: number;
  /** Ledger seqs of the meter records the figure was derived from. */
  readonly evidence: readonly number[];
}

/** The metered delivery of `anonym` in the interval starting at `interval`, or undefined when nothing was metered. */
export type DeliverySource = (anonym: string, interval: number) => MeteredDelivery | undefined;

export interface SettlementInput {
  /** Interval start, ms. */
  readonly interval: number;
  /** The standing trades of the interval (the clearing of its last round). */
  readonly trades: readonly Trade[];
  readonly delivery: DeliverySource;
  /** The DSO's imbalance price, micro-units of currency per kWh. */
  readonly imbalancePrice: number;
}

/** One anonym's position after settlement. Amounts in micro-units: > 0 it receives, < 0 it pays. */
export interface AnonymBalance {
  readonly anonym: string;
  /** Σ sells − Σ buys as traded, Wh. */
  readonly scheduledWh: number;
  readonly meteredWh: number;
  /** Σ delivered sells − Σ delivered buys, Wh. */
  readonly tradedWh: number;
  /** meteredWh − tradedWh: exchanged with the DSO's balancing. */
  readonly imbalanceWh: number;
  readonly tradeAmount: number;
  readonly imbalanceAmount: number;
  readonly total: number;
}

export interface Settlement {
  readonly interval: number;
  /** `settlement` record bodies: one per trade (by trade id), then one imbalance record per anonym (by anonym). */
  readonly records: readonly RecordBody[];
  /** By anonym. */
  readonly balances: readonly AnonymBalance[];
}

export class SettlementError extends Error {
  override name = 'SettlementError';
}

/** Wh × price (micro-units per kWh) / 1000 in micro-units, rounded half away from zero; exact for any safe inputs. */
export function energyAmount(wh: number, price: number): number {
  const product = BigInt(wh) * BigInt(price);
  const magnitude = ((product < 0n ? -product : product) + 500n) / 1000n;
  return Number(product < 0n ? -magnitude : magnitude);
}

/** Id of a settlement record: SHA-256 of SETTLEMENT_TAG ‖ 0x00 ‖ canonical body without id, 0x-hex. */
export function settlementId(body: RecordBody): string {
  const { id: _id, ...content } = body;
  const hash = createHash('sha256');
  hash.update(utf8(SETTLEMENT_TAG));
  hash.update(new Uint8Array([0]));
  hash.update(canonicalBytes(content as CanonicalValue));
  return `0x${hash.digest('hex')}`;
}

function withId(body: Record<string, CanonicalValue>): RecordBody {
  return { id: settlementId(body), ...body };
}

/**
 * Settles one interval: a pure function of the trades, the metered deliveries and the imbalance price. Throws a
 * SettlementError when a trade belongs to another interval or a trading anonym has no metered delivery.
 */
export function settleInterval(input: SettlementInput): Settlement {
  const { interval, imbalancePrice } = input;
  if (!Number.isSafeInteger(imbalancePrice) || imbalancePrice < 0) {
    throw new SettlementError(`imbalance price must be an integer >= 0 (micro-units per kWh), got ${imbalancePrice}`);
  }
  const trades = [...input.trades].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const anonyms = new Set<string>();
  for (const t of trades) {
    if (t.interval !== interval) {
      throw new SettlementError(`trade ${t.id} is for interval ${t.interval}, not the settled interval ${interval}`);
    }
    anonyms.add(t.seller);
    anonyms.add(t.buyer);
  }
  const metered = new Map<string, MeteredDelivery>();
  for (const anonym of [...anonyms].sort()) {
    const d = input.delivery(anonym, interval);
    if (d === undefined) {
      throw new SettlementError(
        `no metered delivery for anonym ${anonym} in interval ${new Date(interval).toISOString()}: ` +
          'its meter records are missing from the ledger; settle after they arrive',
      );
    }
    if (!Number.isSafeInteger(d.netExportWh)) {
      throw new SettlementError(`metered delivery of ${anonym} is not an integer Wh: ${d.netExportWh}`);
    }
    metered.set(anonym, d);
  }

  // Each side's share of its metered energy per trade (rule 1).
  const sellerShare = new Map<string, number>();
  const buyerShare = new Map<string, number>();
  for (const [anonym, d] of metered) {
    const sells = trades.filter((t) => t.seller === anonym);
    const buys = trades.filter((t) => t.buyer === anonym);
    const sold = sells.reduce((s, t) => s + t.qtyWh, 0);
    const bought = buys.reduce((s, t) => s + t.qtyWh, 0);
    const sent = apportion(
      Math.min(Math.max(d.netExportWh, 0), sold),
      sells.map((t) => t.qtyWh),
      sells.map((t) => t.id),
    );
    for (const [i, t] of sells.entries()) sellerShare.set(t.id, sent[i] as number);
    const taken = apportion(
      Math.min(Math.max(-d.netExportWh, 0), bought),
      buys.map((t) => t.qtyWh),
      buys.map((t) => t.id),
    );
    for (const [i, t] of buys.entries()) buyerShare.set(t.id, taken[i] as number);
  }

  const records: RecordBody[] = [];
  const tradedWh = new Map<string, number>();
  const tradeAmount = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, v: number) => map.set(key, (map.get(key) ?? 0) + v);
  for (const t of trades) {
    const deliveredWh = Math.min(sellerShare.get(t.id) ?? 0, buyerShare.get(t.id) ?? 0);
    const amount = energyAmount(deliveredWh, t.price);
    add(tradedWh, t.seller, deliveredWh);
    add(tradedWh, t.buyer, -deliveredWh);
    add(tradeAmount, t.seller, amount);
    add(tradeAmount, t.buyer, -amount);
    records.push(
      withId({
        kind: 'trade',
        trade: t.id,
        interval,
        round: t.round,
        seller: t.seller,
        buyer: t.buyer,
        qtyWh: t.qtyWh,
        price: t.price,
        deliveredWh,
        amount,
        evidence: evidenceOf(metered.get(t.seller), metered.get(t.buyer)),
      }),
    );
  }

  const balances: AnonymBalance[] = [];
  for (const [anonym, d] of metered) {
    const scheduledWh = trades.reduce(
      (s, t) => s + (t.seller === anonym ? t.qtyWh : 0) - (t.buyer === anonym ? t.qtyWh : 0),
      0,
    );
    const traded = tradedWh.get(anonym) ?? 0;
    const imbalanceWh = d.netExportWh - traded;
    const imbalanceAmount = energyAmount(imbalanceWh, imbalancePrice);
    records.push(
      withId({
        kind: 'imbalance',
        trade: IMBALANCE_TRADE,
        interval,
        anonym,
        scheduledWh,
        meteredWh: d.netExportWh,
        tradedWh: traded,
        deliveredWh: imbalanceWh,
        price: imbalancePrice,
        amount: imbalanceAmount,
        evidence: evidenceOf(d),
      }),
    );
    const paid = tradeAmount.get(anonym) ?? 0;
    balances.push({
      anonym,
      scheduledWh,
      meteredWh: d.netExportWh,
      tradedWh: traded,
      imbalanceWh,
      tradeAmount: paid,
      imbalanceAmount,
      total: paid + imbalanceAmount,
    });
  }
  return { interval, records, balances };
}

function evidenceOf(...deliveries: (MeteredDelivery | undefined)[]): number[] {
  const seqs = new Set<number>();
  for (const d of deliveries) for (const s of d?.evidence ?? []) seqs.add(s);
  return [...seqs].sort((a, b) => a - b);
}

export type SettlementCheck = { readonly ok: true } | { readonly ok: false; readonly problems: readonly string[] };

/**
 * What the counterparty or the DSO runs on a settlement it received: recomputes it from the trades and its own view
 * of the evidence (a DeliverySource built from the evidence records, e.g. meterBatchDelivery) and names every record
 * that differs, is missing, is extra, or whose id is not the digest of its content.
 */
export function checkSettlement(claimed: readonly RecordBody[], input: SettlementInput): SettlementCheck {
  let expected: Settlement;
  try {
    expected = settleInterval(input);
  } catch (err) {
    return { ok: false, problems: [`cannot recompute the settlement: ${(err as Error).message}`] };
  }
  const keyOf = (b: RecordBody) => (b.kind === 'imbalance' ? `imbalance of ${String(b.anonym)}` : `trade ${b.trade}`);
  const problems: string[] = [];
  const theirs = new Map<string, RecordBody>();
  for (const body of claimed) {
    const key = keyOf(body);
    if (theirs.has(key)) problems.push(`settlement of ${key} appears twice`);
    theirs.set(key, body);
    if (body.id !== settlementId(body))
      problems.push(`settlement of ${key}: id ${body.id} is not its content's digest`);
  }
  for (const mine of expected.records) {
    const key = keyOf(mine);
    const their = theirs.get(key);
    theirs.delete(key);
    if (their === undefined) {
      problems.push(`settlement of ${key} is missing`);
      continue;
    }
    for (const field of Object.keys(mine)) {
      if (field === 'id') continue;
      const a = JSON.stringify(their[field]);
      const b = JSON.stringify(mine[field]);
      if (a !== b) problems.push(`settlement of ${key}: ${field} is ${a ?? 'absent'}, recomputed ${b}`);
    }
  }
  for (const key of theirs.keys()) problems.push(`settlement of ${key} does not follow from the interval's trades`);
  return problems.length === 0 ? { ok: true } : { ok: false, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Delivered energy from meter-signed batches

interface CounterSample {
  readonly t: number;
  readonly importWh: number;
  readonly exportWh: number;
  readonly seq: number;
}

/**
 * The net export (Wh) of `meter` over [start, end) from its signed `meter-batch` records (format mgmc-meter/v1, with
 * the importWh and exportWh register channels): export(end) − export(start) − (import(end) − import(start)). A
 * register at a boundary is the sample taken then, else interpolated linearly between the samples around it (rounded
 * half up), so consecutive intervals add up exactly. Evidence: the seqs of the batches holding those samples.
 * Throws a SettlementError, naming the record, for a batch whose signature is not the meter's, one flagged tamper or
 * unsynced clock, registers that go backwards, or when no sample brackets a boundary.
 */
export function deliveryFromMeterBatches(
  records: readonly LedgerRecord[],
  span: { readonly meter: string; readonly start: number; readonly end: number },
): MeteredDelivery {
  const meter = span.meter.toLowerCase();
  const byTime = new Map<number, CounterSample>();
  for (const r of records) {
    if (r.type !== 'meter-batch' || String(r.body.meter).toLowerCase() !== meter) continue;
    const where = `meter-batch record ${r.seq} of meter ${span.meter}`;
    if (r.body.format !== METER_BATCH_FORMAT_V1) continue;
    const bad = checkMeterBatch(r.body);
    if (bad !== undefined) throw new SettlementError(`${where}: ${bad}`);
    let batch: ReturnType<typeof decodeReadingBatch>;
    try {
      batch = decodeReadingBatch(fromHex(r.body.payload as string, 'payload'));
    } catch (err) {
      throw new SettlementError(`${where}: ${(err as Error).message}`);
    }
    const imp = batch.channels.indexOf('importWh');
    const exp = batch.channels.indexOf('exportWh');
    if (imp < 0 || exp < 0) continue;
    const last = batch.startMs + (batch.samples.length - 1) * batch.intervalMs;
    const unusable = batch.flags & (BatchFlag.TAMPER | BatchFlag.CLOCK_UNSYNCED);
    if (unusable !== 0 && last >= span.start && batch.startMs <= span.end) {
      throw new SettlementError(
        `${where}: the meter flagged this batch ${unusable & BatchFlag.TAMPER ? 'tamper' : 'unsynced clock'}; ` +
          'its registers cannot settle this interval (have the DSO read the meter on site)',
      );
    }
    batch.samples.forEach((s, i) => {
      const sample = {
        t: batch.startMs + i * batch.intervalMs,
        importWh: s[imp] as number,
        exportWh: s[exp] as number,
        seq: r.seq,
      };
      const seen = byTime.get(sample.t);
      if (seen === undefined) byTime.set(sample.t, sample);
      else if (seen.importWh !== sample.importWh || seen.exportWh !== sample.exportWh) {
        throw new SettlementError(
          `${where}: its sample at ${new Date(sample.t).toISOString()} differs from record ${seen.seq}'s`,
        );
      }
    });
  }
  const samples = [...byTime.values()].sort((a, b) => a.t - b.t);
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as CounterSample;
    const b = samples[i] as CounterSample;
    if (b.importWh < a.importWh || b.exportWh < a.exportWh) {
      throw new SettlementError(
        `meter ${span.meter}: energy registers go backwards between records ${a.seq} and ${b.seq} ` +
          `(${new Date(a.t).toISOString()} → ${new Date(b.t).toISOString()}): a reset or a replaced meter`,
      );
    }
  }
  const evidence = new Set<number>();
  const at = (t: number, what: string): { importWh: number; exportWh: number } => {
    const i = samples.findIndex((s) => s.t >= t);
    const after = samples[i];
    if (after !== undefined && after.t === t) {
      evidence.add(after.seq);
      return after;
    }
    const before = samples[i < 0 ? samples.length - 1 : i - 1];
    if (after === undefined || before === undefined || i === 0) {
      throw new SettlementError(
        `meter ${span.meter}: no signed samples on both sides of the interval's ${what} ${new Date(t).toISOString()}`,
      );
    }
    evidence.add(before.seq);
    evidence.add(after.seq);
    return {
      importWh: interpolate(before.t, before.importWh, after.t, after.importWh, t),
      exportWh: interpolate(before.t, before.exportWh, after.t, after.exportWh, t),
    };
  };
  const a = at(span.start, 'start');
  const b = at(span.end, 'end');
  return {
    netExportWh: b.exportWh - a.exportWh - (b.importWh - a.importWh),
    evidence: [...evidence].sort((x, y) => x - y),
  };
}

/** Register value at t between (ta, a) and (tb, b), b >= a, rounded half up, exact in BigInt. */
function interpolate(ta: number, a: number, tb: number, b: number, t: number): number {
  const num = BigInt(b - a) * BigInt(t - ta);
  const den = BigInt(tb - ta);
  return a + Number((2n * num + den) / (2n * den));
}

/**
 * A DeliverySource over meter-batch records: `meters` maps each anonym to its MGMC's connection meter address (the
 * DSO knows it from the registration), `intervalMs` is the market interval length.
 */
export function meterBatchDelivery(
  records: readonly LedgerRecord[],
  meters: ReadonlyMap<string, string>,
  intervalMs: number,
): DeliverySource {
  return (anonym, interval) => {
    const meter = meters.get(anonym);
    if (meter === undefined) return undefined;
    return deliveryFromMeterBatches(records, { meter, start: interval, end: interval + intervalMs });
  };
}
