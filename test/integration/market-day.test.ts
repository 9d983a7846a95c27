/**
 * A day of market intervals end to end through a real mosquitto, on the IEEE 33-bus feeder: a DSO node (registry,
 * grid security, market sequencer) and four MGMCs built from the parts the MGMC runtime wires (ledger, link,
 * MgmcSync, MgmcAdjustments, the market runtime). Each MGMC's price-response curves come from the real optimizer
 * (HiGHS) on a building case, scaled to a microgrid. For every hour of the day (the market interval; four optimizer
 * steps each) the MGMCs bargain; the DSO checks the positions the trades leave; at night the factory's import
 * overloads its lateral and around midday the PV-heavy microgrid at the end of the main feeder pushes the voltage out
 * of band: they get encrypted adjustment contracts, and the interval is re-traded within the caps until it is secure. Then the meters' signed batches go into each MGMC's ledger and every traded interval is
 * settled; `mgmc market replay` recomputes every recorded clearing; the settlements are checked as the DSO would.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clock, systemClock } from '../../agent/clock.js';
import { marketReplay } from '../../agent/commands/market.js';
import { checkNetwork } from '../../agent/dso/network-check.js';
import { type RunningDso, startDso } from '../../agent/dso/node.js';
import { createFeeder } from '../../agent/grid/feeder.js';
import { ieee33 } from '../../agent/grid/ieee33.js';
import { busLoads } from '../../agent/grid/powerflow.js';
import { generateKeyPair, type KeyPair } from '../../agent/identity/keys.js';
import { decodeRecord, type LedgerRecord, type RecordBody } from '../../agent/ledger/records.js';
import { deriveAnonymKey } from '../../agent/link/anonym.js';
import { type MarketRuntime, startMarketRuntime } from '../../agent/link/market-runtime.js';
import { type Logger, silentLogger } from '../../agent/logger.js';
import type { PriceResponseCurve } from '../../agent/market/curve.js';
import type { IntervalResult } from '../../agent/market/session.js';
import { checkSettlement, meterBatchDelivery } from '../../agent/market/settlement.js';
import { createInlineSolver, type Solver } from '../../agent/optimizer/solver.js';
import type { LedgerStore } from '../../agent/store/ledger-store.js';
import { dayCurves } from '../../bench/market-day.js';
import {
  encodeReadingBatch,
  meterAddressFromPrivateKey,
  meterBatchRecordBody,
  signReadingBatch,
} from '../../firmware-bridge/batch.js';
import { type TestGenesis, until, writeDsoNode } from '../helpers/dso-node.js';
import { LinkedMgmc } from '../helpers/linked-mgmc.js';
import { type MosquittoBroker, requireMosquitto, startMosquitto } from '../helpers/mosquitto.js';

const CHAIN = 516;
const Q = 900_000;
/** The market trades hours (four optimizer steps each). */
const HOUR = 3_600_000;
const GRID = { importPrice: 300_000, exportPrice: 80_000 };
const IMBALANCE = 350_000;

function records(store: LedgerStore): LedgerRecord[] {
  return [...store.records(1)].map((r) => decodeRecord(r.body, `record ${r.seq}`));
}

/** One MGMC (test/helpers/linked-mgmc.ts) with its connection meter registered and the market runtime. */
class TestMgmc extends LinkedMgmc {
  readonly market: MarketRuntime;
  readonly meterKey: Uint8Array;
  readonly meter: string;
  readonly finals: IntervalResult[] = [];
  readonly settled: RecordBody[] = [];

  constructor(
    name: string,
    key: KeyPair,
    bus: string,
    readonly curves: ReadonlyMap<number, PriceResponseCurve>,
    dir: string,
    url: string,
    genesis: TestGenesis,
    clock: Clock,
    logger: Logger,
  ) {
    const meterKey = new Uint8Array(randomBytes(32));
    const meter = meterAddressFromPrivateKey(meterKey);
    super({ name, key, bus, dir, url, genesis, clock, logger, meters: [meter], sealEveryRecords: 500 });
    this.meterKey = meterKey;
    this.meter = meter;
    this.market = startMarketRuntime({
      chainId: CHAIN,
      clock,
      logger,
      link: this.link,
      topics: this.topics,
      session: this.session,
      anonymKey: deriveAnonymKey(key.privateKey, CHAIN, 0),
      validators: () => this.sync.validators(),
      ledger: {
        append: (list) => {
          for (const r of list) if (r.type === 'settlement') this.settled.push(r.body);
          return this.ledger.append(list);
        },
      },
      store: this.store,
      intervalMs: HOUR,
      meter: this.meter,
      caps: (interval) => this.adjustments.capsFor(interval),
      publishPosition: (interval, netW, durationMs) => this.adjustments.publishPosition(interval, netW, durationMs),
      curve: async (interval) => this.curves.get(interval),
      onTraded: (result) => this.finals.push(result),
    });
    void this.market.start();
    this.connect();
  }

  get anonym(): string {
    return this.market.market.anonym;
  }

  /** The standing result per interval (the last attempt's). */
  standing(): Map<number, IntervalResult> {
    const out = new Map<number, IntervalResult>();
    for (const r of this.finals) out.set(r.interval, r);
    return out;
  }

  /**
   * The connection meter's signed batches for the day (one per hour, 15-minute register samples): what the MGMC
   * really exchanged, its position plus a deterministic deviation of up to ±3 %.
   */
  meterDay(start: number, intervals: number): void {
    const standing = this.standing();
    let imp = 1_000_000;
    let exp = 2_000_000;
    const samples: [number, number, number][] = [[imp, exp, 0]];
    for (let t = 0; t < intervals; t++) {
      // The hour's position, spread evenly over its quarters.
      const position = (standing.get(start + Math.floor(t / 4) * HOUR)?.positionWh ?? 0) / 4;
      const delivered = Math.round(position * (1 + 0.03 * Math.sin(t * 1.7 + this.bus.length)));
      if (delivered >= 0) exp += delivered;
      else imp -= delivered;
      samples.push([imp, exp, 0]);
    }
    for (let h = 0; h * 4 < intervals; h++) {
      const payload = encodeReadingBatch({
        meter: this.meter,
        counter: h + 1,
        flags: 0,
        startMs: start + h * 4 * Q,
        intervalMs: Q,
        channels: ['importWh', 'exportWh', 'powerW'],
        samples: samples.slice(h * 4, h * 4 + 5),
      });
      this.ledger.append([
        {
          type: 'meter-batch',
          body: meterBatchRecordBody(payload, signReadingBatch(payload, this.meterKey)),
          time: start + (h + 1) * 4 * Q,
        },
      ]);
    }
  }

  override async stop(): Promise<void> {
    await this.market.stop();
    await super.stop();
  }
}

// requireMosquitto() warns loudly when mosquitto is missing, and throws in CI where it must be installed.
const describeMosquitto = describe.skipIf(!requireMosquitto());

describeMosquitto('a market day through mosquitto on the IEEE 33-bus feeder', () => {
  let dir: string;
  let broker: MosquittoBroker;
  let dso: RunningDso | undefined;
  let solver: Solver;
  const mgmcs: TestMgmc[] = [];
  const feeder = createFeeder(ieee33());
  const halfLoad = busLoads(feeder, { scale: 0.5 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mgmc-market-day-'));
    broker = await startMosquitto();
    solver = await createInlineSolver();
  });

  afterAll(async () => {
    for (const m of mgmcs) await m.stop();
    await dso?.stop();
    await solver?.close();
    await broker?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('bargains, re-trades within DSO caps, delivers and settles every interval of a day', async () => {
    const clock = systemClock();
    const logger = silentLogger();
    const keys = { end: generateKeyPair(), mid: generateKeyPair(), factory: generateKeyPair(), ev: generateKeyPair() };
    const { genesis, config } = await writeDsoNode(dir, {
      chainId: CHAIN,
      brokerUrl: broker.url,
      allow: Object.values(keys).map((k) => k.address),
    });
    dso = await startDso(config, {
      clock,
      logger,
      registryRefreshMs: 200,
      grid: { feeder, solver, base: () => halfLoad, resendMs: 1_000, intervalMs: HOUR },
      market: {
        prices: () => ({ grid: GRID, imbalancePrice: IMBALANCE }),
        roundCap: 30,
        maxAttempts: 3,
        schedule: false,
        timing: {
          intervalMs: HOUR,
          leadMs: 7 * 86_400_000,
          gateMs: 60_000,
          phaseMs: 3_000,
          positionWaitMs: 3_000,
          deliveryWaitMs: 3_000,
        },
      },
    });
    const node = dso;
    const sequencer = node.market;
    const grid = node.grid;
    if (sequencer === undefined || grid === undefined) throw new Error('the DSO started without market or grid');
    await until('the DSO online', () => node.link.online);

    // Tomorrow (UTC), so every interval's gate is still open while the day is traded.
    const day = Math.floor(Date.now() / 86_400_000) * 86_400_000 + 86_400_000;
    const end = new TestMgmc(
      'end',
      keys.end,
      '18',
      await dayCurves('pv-only', 100, day, solver, { pvScale: 3 }),
      dir,
      broker.url,
      genesis,
      clock,
      logger,
    );
    const mid = new TestMgmc(
      'mid',
      keys.mid,
      '14',
      await dayCurves('pv-battery', 30, day, solver, { pvScale: 2 }),
      dir,
      broker.url,
      genesis,
      clock,
      logger,
    );
    const factory = new TestMgmc(
      'factory',
      keys.factory,
      '25',
      await dayCurves('flexible-loads', 60, day, solver, { withoutPv: true }),
      dir,
      broker.url,
      genesis,
      clock,
      logger,
    );
    const ev = new TestMgmc(
      'ev',
      keys.ev,
      '30',
      await dayCurves('pv-battery-ev', 20, day, solver),
      dir,
      broker.url,
      genesis,
      clock,
      logger,
    );
    mgmcs.push(end, mid, factory, ev);
    await until('every MGMC authorized', () =>
      mgmcs.every((m) => m.sync.authorizationState().status === 'authorized' && m.link.online),
    );
    await until('the authorized set at the DSO', () => node.registry.authorizedSet().anonyms.length === 4);

    const summaries = [];
    for (let h = 0; h < 24; h++) summaries.push(await sequencer.runInterval(day + h * HOUR));

    // Every interval closed with a standing attempt, and every MGMC holds that attempt's outcome.
    expect(summaries.every((s) => s.standing !== undefined)).toBe(true);
    expect(summaries.every((s) => s.closedBy === 'secure')).toBe(true);
    for (const m of mgmcs) {
      const standing = m.standing();
      for (const s of summaries) expect(standing.get(s.interval)?.attempt).toBe(s.standing);
    }
    const traded = summaries.filter((s) => (s.attempts.at(-1)?.trades ?? 0) > 0);
    expect(traded.length).toBeGreaterThan(8);
    // Capped MGMCs re-traded: the factory at night, the end of the main feeder around midday.
    const retraded = summaries.filter((s) => s.attempts.length > 1);
    expect(retraded.length).toBeGreaterThan(0);
    expect(retraded.every((s) => (s.attempts[0]?.capsSent ?? 0) > 0)).toBe(true);
    expect(end.adjustments.stats().accepted).toBeGreaterThan(0);
    // The final positions of every interval keep the feeder within its limits.
    for (const s of retraded) {
      const final = await checkNetwork(feeder, grid.positions(s.interval), solver, { base: halfLoad });
      expect(final.before.violations).toEqual([]);
    }

    // Delivery and settlement: the meters' signed batches, then every traded interval is settled through the DSO.
    for (const m of mgmcs) m.meterDay(day, 96);
    for (const s of traded) {
      const outcome = await sequencer.settle(s.interval);
      expect(outcome).toMatchObject({ deliveries: outcome?.expected });
    }
    await until('every trader settled every traded interval', () =>
      traded.every((s) =>
        mgmcs.every((m) => {
          const r = m.standing().get(s.interval);
          if (r === undefined || r.own.length === 0) return true;
          return m.settled.some((b) => b.interval === s.interval && b.kind === 'imbalance');
        }),
      ),
    );
    // The DSO's check: deliveries recomputed from each MGMC's meter-signed records, the settlements from them.
    const meters = new Map(mgmcs.map((m) => [m.anonym, m.meter]));
    const deliveries = mgmcs.map((m) => meterBatchDelivery(records(m.store), meters, HOUR));
    const delivery = (anonym: string, interval: number) => {
      const i = mgmcs.findIndex((m) => m.anonym === anonym);
      return deliveries[i]?.(anonym, interval);
    };
    let paid = 0;
    for (const s of traded) {
      const trades = end.standing().get(s.interval)?.trades ?? [];
      const claimed = mgmcs.flatMap((m) => m.settled.filter((b) => b.interval === s.interval));
      const unique = [...new Map(claimed.map((b) => [b.id, b])).values()];
      const check = checkSettlement(unique, { interval: s.interval, trades, delivery, imbalancePrice: IMBALANCE });
      expect(check).toEqual({ ok: true });
      paid += unique.filter((b) => b.kind === 'trade').reduce((sum, b) => sum + (b.amount as number), 0);
    }
    expect(paid).toBeGreaterThan(0);

    // Every recorded clearing follows from the recorded orders (mgmc market replay), at every MGMC.
    for (const m of mgmcs) {
      m.ledger.seal();
      for (const s of traded) {
        const lines: string[] = [];
        const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
        const code = marketReplay(io as never, { db: join(dir, `${m.name}.db`), interval: s.interval, json: true });
        expect(code, lines.join('\n')).toBe(0);
      }
    }
    expect(sequencer.stats().rejected).toEqual({});
    expect(node.stats().dropped).toEqual({});
  }, 600_000);
});
