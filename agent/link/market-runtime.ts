/**
 * The market inside a running MGMC: the MQTT participant (market-link.ts) with everything around it.
 * - Curves: the optimizer's price response for the interval, within the DSO's caps, converted to market units
 *   (integer Wh and micro-units per kWh). A market interval of several optimizer steps sums their curves.
 * - Each attempt's outcome: the standing round's orders and trades are written to the ledger (so
 *   `mgmc market replay` can recompute the clearing from this database alone), the net position the trades leave is
 *   reported to the DSO for its network check, and the optimizer plans again around the committed trades.
 * - Settlement: the metered delivery comes from the connection meter's signed batches in this ledger; the settlement
 *   records that concern this MGMC are written to the ledger, each pointing to the meter records behind it.
 */
import type { Clock } from '../clock.js';
import type { Address, KeyPair } from '../identity/keys.js';
import type { Ledger } from '../ledger/ledger.js';
import { decodeRecord, type LedgerRecord } from '../ledger/records.js';
import type { Logger } from '../logger.js';
import type { PriceResponseCurve as MarketCurve } from '../market/curve.js';
import { toOrderRecord, toTradeRecord } from '../market/records.js';
import type { ContractRules } from '../market/rules.js';
import type { IntervalResult } from '../market/session.js';
import { deliveryFromMeterBatches, type MeteredDelivery } from '../market/settlement.js';
import type { CommittedTrade, Horizon, NetPositionCaps } from '../optimizer/model.js';
import type { PriceResponseCurve as OptimizerCurve } from '../optimizer/optimize.js';
import type { LedgerStore } from '../store/ledger-store.js';
import { MgmcMarket } from './market-link.js';
import type { MqttLink } from './mqtt-client.js';
import type { LinkTopics } from './topics.js';

export interface MarketRuntimeDeps {
  readonly chainId: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly link: Pick<MqttLink, 'publish' | 'subscribe' | 'unsubscribe'>;
  readonly topics: LinkTopics;
  readonly session: number;
  readonly anonymKey: KeyPair;
  readonly validators: () => readonly Address[];
  readonly ledger: Pick<Ledger, 'append'>;
  readonly store: Pick<LedgerStore, 'records' | 'lastSeq'>;
  readonly intervalMs: number;
  readonly rules?: ContractRules;
  readonly green?: boolean;
  /** Address of the connection meter whose signed batches settle the trades. */
  readonly meter?: string;
  /** The DSO's caps in force for an interval, W. */
  readonly caps: (interval: number) => { readonly maxImportW?: number; readonly maxExportW?: number } | undefined;
  /** Reports the net position (W, import positive) of an interval to the DSO. */
  readonly publishPosition: (interval: number, netW: number, durationMs: number) => Promise<unknown>;
  /** The curve of an interval in market units, before caps (default: none: the MGMC stays out). */
  readonly curve?: (interval: number, attempt: number) => Promise<MarketCurve | undefined>;
  /** Called after each attempt's outcome is recorded (the optimizer re-plans). */
  readonly onTraded?: (result: IntervalResult) => void;
}

export interface MarketRuntime {
  readonly market: MgmcMarket;
  /** Committed trades over an optimizer horizon (intervals being re-bargained are left out). */
  commitments(horizon: Horizon): { trades: CommittedTrade[]; caps: NetPositionCaps };
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** netWh of a curve kept within caps (W over the interval): export at most maxExport, import at most maxImport. */
export function capCurve(
  curve: MarketCurve,
  caps: { readonly maxImportW?: number; readonly maxExportW?: number } | undefined,
  intervalMs: number,
): MarketCurve {
  if (caps === undefined) return curve;
  const hours = intervalMs / 3_600_000;
  const hi = caps.maxExportW === undefined ? Number.POSITIVE_INFINITY : Math.floor(caps.maxExportW * hours);
  const lo = caps.maxImportW === undefined ? Number.NEGATIVE_INFINITY : -Math.floor(caps.maxImportW * hours);
  return {
    interval: curve.interval,
    points: curve.points.map((p) => ({ price: p.price, netWh: Math.min(hi, Math.max(lo, p.netWh)) })),
  };
}

/**
 * The optimizer's curves (currency per kWh, mean W over each step) of the steps inside one market interval, as one
 * market curve: at every price asked, the sum of the steps' energies (integer Wh, micro-units per kWh).
 */
export function marketCurve(curves: readonly OptimizerCurve[], interval: number, stepMs: number): MarketCurve {
  const prices = [...new Set(curves.flatMap((c) => c.points.map((p) => Math.round(p.price * 1e6))))]
    .filter((p) => p >= 0)
    .sort((a, b) => a - b);
  const at = (c: OptimizerCurve, price: number): number => {
    const pts = c.points;
    let w = pts[0]?.netW ?? 0;
    for (const p of pts) if (Math.round(p.price * 1e6) <= price) w = p.netW;
    return w;
  };
  return {
    interval,
    points: prices.map((price) => ({
      price,
      netWh: Math.round(curves.reduce((sum, c) => sum + (at(c, price) * stepMs) / 3_600_000, 0)),
    })),
  };
}

export function startMarketRuntime(deps: MarketRuntimeDeps): MarketRuntime {
  const log = deps.logger.child({ module: 'market' });
  const meterBatches = new MeterBatchCache(deps.store);
  const market = new MgmcMarket({
    chainId: deps.chainId,
    clock: deps.clock,
    logger: deps.logger,
    link: deps.link,
    topics: deps.topics,
    session: deps.session,
    anonymKey: deps.anonymKey,
    validators: deps.validators,
    ...(deps.rules === undefined ? {} : { rules: deps.rules }),
    green: deps.green === true,
    curve: async (interval, attempt) => {
      const raw = await deps.curve?.(interval, attempt);
      return raw === undefined ? undefined : capCurve(raw, deps.caps(interval), deps.intervalMs);
    },
    ...(deps.meter === undefined
      ? {}
      : {
          delivery: (interval: number): MeteredDelivery | undefined => {
            const meter = deps.meter as string;
            const records = meterBatches.around(interval, interval + deps.intervalMs);
            if (records.length === 0) return undefined;
            return deliveryFromMeterBatches(records, { meter, start: interval, end: interval + deps.intervalMs });
          },
        }),
    onFinal: (result) => {
      // The standing round's orders (everyone's: the clearing is recomputed from them) and its trades.
      deps.ledger.append([
        ...result.orders.map((o) => ({ type: 'order' as const, body: toOrderRecord(o) })),
        ...result.trades.map((t) => ({ type: 'trade' as const, body: toTradeRecord(t) })),
      ]);
      const netW = -Math.round((result.positionWh * 3_600_000) / deps.intervalMs);
      deps
        .publishPosition(result.interval, netW, deps.intervalMs)
        .catch((err: Error) => log.warn({ interval: result.interval }, `position not reported: ${err.message}`));
      deps.onTraded?.(result);
    },
    onSettled: (settlement, own) => {
      deps.ledger.append(own.map((body) => ({ type: 'settlement' as const, body })));
      const mine = settlement.balances.find((b) => b.anonym === deps.anonymKey.address);
      log.info(
        { interval: settlement.interval, records: own.length, total: mine?.total },
        `settled ${new Date(settlement.interval).toISOString()}`,
      );
    },
  });
  let housekeeping: ReturnType<Clock['setInterval']> | undefined;
  return {
    market,
    commitments(h) {
      const trades: CommittedTrade[] = [];
      const end = h.start + h.steps * h.stepMs;
      for (const r of market.participant.resultsIn(h.start - deps.intervalMs, end)) {
        if (market.participant.inProgress(r.interval)) continue;
        for (const t of r.own) {
          const bought = t.buyer === deps.anonymKey.address;
          // A market interval spans whole optimizer steps (or one step spans several intervals: then a part).
          for (let s = 0; s < h.steps; s++) {
            const from = Math.max(h.start + s * h.stepMs, r.interval);
            const to = Math.min(h.start + (s + 1) * h.stepMs, r.interval + deps.intervalMs);
            if (to <= from) continue;
            const share = (t.qtyWh * (to - from)) / deps.intervalMs;
            const powerW = (share * 3_600_000) / h.stepMs;
            trades.push({ step: s, powerW: bought ? powerW : -powerW, price: t.price / 1e6 });
          }
        }
      }
      return { trades, caps: {} };
    },
    async start() {
      await market.start();
      housekeeping = deps.clock.setInterval(() => {
        const before = deps.clock.now() - 2 * 86_400_000;
        market.participant.forget(before);
        meterBatches.forget(before);
      }, 3_600_000);
    },
    async stop() {
      housekeeping?.cancel();
      await market.stop();
    },
  };
}

/** The ledger's meter-batch records, read once and kept for two days (settlement reads them per interval). */
class MeterBatchCache {
  private scanned = 0;
  private readonly records: LedgerRecord[] = [];

  constructor(private readonly store: Pick<LedgerStore, 'records' | 'lastSeq'>) {}

  /** Records whose samples may reach into [from, to] (a batch spans at most a day). */
  around(from: number, to: number): LedgerRecord[] {
    const last = this.store.lastSeq();
    if (last > this.scanned) {
      for (const row of this.store.records(this.scanned + 1, last + 1)) {
        if (row.type !== 'meter-batch' || row.body.length === 0) continue;
        this.records.push(decodeRecord(row.body, `record ${row.seq}`));
      }
      this.scanned = last;
    }
    return this.records.filter((r) => r.time >= from - 86_400_000 && r.time <= to + 86_400_000);
  }

  forget(before: number): void {
    let i = 0;
    while (i < this.records.length && (this.records[i] as LedgerRecord).time < before - 86_400_000) i++;
    this.records.splice(0, i);
  }
}
