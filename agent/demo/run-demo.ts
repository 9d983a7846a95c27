/**
 * The whole system on one machine for one accelerated day: an in-process broker, the DSO node (registry, DSO chain,
 * grid security on the IEEE 33-bus feeder, market sequencer), and N MGMCs, each a real agent (startMgmc) polling
 * its simulated devices over loopback Modbus TCP, signing a ledger, planning with HiGHS, trading and shipping blocks.
 * Everything runs on DemoTime. What happened is collected as report data; the caller prints and renders it.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import type { AgentConfig } from '../config/index.js';
import { loadConfig } from '../config/index.js';
import { type DsoHeader, type DsoParent, entriesRoot, verifyDsoHeader } from '../dso/chain.js';
import type { DsoChainStore } from '../dso/chain-store.js';
import type { IntervalSummary } from '../dso/market-sequencer.js';
import { loadsWithPositions, type ReportedPosition } from '../dso/network-check.js';
import { type RunningDso, startDso } from '../dso/node.js';
import { createFeeder } from '../grid/feeder.js';
import { ieee33 } from '../grid/ieee33.js';
import { busLoads, powerFlow } from '../grid/powerflow.js';
import { toHex } from '../identity/bytes.js';
import { type Address, generateKeyPair } from '../identity/keys.js';
import { writeKeystoreFile } from '../identity/keystore.js';
import { storeSource } from '../ledger/sources.js';
import { verifyChain } from '../ledger/verify.js';
import { deriveAnonymKey } from '../link/anonym.js';
import { startEmbeddedBroker } from '../link/embedded-broker.js';
import type { Logger } from '../logger.js';
import { type RunningMgmc, startMgmc } from '../main.js';
import { microPerKWh } from '../market/config.js';
import type { IntervalResult } from '../market/session.js';
import type { Solver } from '../optimizer/solver.js';
import type { DemoReportData, LedgerReport, MarketIntervalReport, MicrogridReport, StepSample } from './report-data.js';
import {
  DEMO_CHAIN_ID,
  DEMO_MARKET_MINUTES,
  DEMO_MICROGRIDS,
  DEMO_PRICES,
  DEMO_TIME_ZONE,
  type DemoMicrogrid,
  dsoYaml,
  mgmcYaml,
  PASSPHRASE_VAR,
  simSiteYaml,
} from './scenario.js';
import { DemoTime } from './time.js';

export interface DemoRunOptions {
  /** Working directory (wiped first). */
  readonly dir: string;
  /** Simulated hours after the warm-up hour. */
  readonly hours: number;
  /** Local hour of the demo day the simulated period starts at (after the warm-up hour); 0 = midnight. */
  readonly fromHour?: number;
  readonly mgmcs: number;
  readonly seed: number;
  /** Simulated seconds per wall-clock second. */
  readonly speed: number;
  readonly logger: Logger;
  /** Each MGMC's LP solver; a HiGHS worker thread of its own by default (tests pass an in-process one). */
  readonly createSolver?: () => Promise<Solver>;
  /** Live progress: one line per market interval, and phases of the run. */
  readonly progress: (event: DemoEvent) => void;
}

export type DemoEvent =
  | { readonly kind: 'phase'; readonly text: string }
  | { readonly kind: 'interval'; readonly line: IntervalLine };

export interface IntervalLine {
  readonly interval: number;
  readonly attempts: number;
  readonly closedBy: string;
  readonly trades: number;
  readonly volumeWh: number;
  readonly priceAvg: number | null;
  readonly adjustments: number;
  /** Blocks of all MGMCs the DSO has anchored so far, and its chain height. */
  readonly anchored: number;
  readonly dsoHeight: number;
}

export interface DemoResult {
  readonly report: DemoReportData;
  /** Every chain verified, the DSO holds every block, trades happened, costs computed. */
  readonly ok: boolean;
}

const HOUR = 3_600_000;
const STEP_MS = 15 * 60_000;
const MARKET_MS = DEMO_MARKET_MINUTES * 60_000;
/** 2026-06-22 is a Monday (offices and commuters at work); the run starts an hour before its midnight, CEST. */
const DAY_START = Date.parse('2026-06-22T00:00:00+02:00');
const WARM_UP_MS = HOUR;
const LOCAL_HOUR = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', hour12: false, timeZone: DEMO_TIME_ZONE });

/** A step sample with the grid meter's energy counters, which the costs are computed from. */
interface Sample extends StepSample {
  readonly meterImportWh?: number;
  readonly meterExportWh?: number;
}

interface Grid {
  readonly m: DemoMicrogrid;
  readonly sim: SimulatedSite;
  readonly config: AgentConfig;
  /** Its market identity (lower case). */
  readonly anonym: string;
  agent?: RunningMgmc;
  readonly steps: Sample[];
  /** Standing results by interval, as the MGMC holds them. */
  readonly results: Map<number, IntervalResult>;
}

export async function runDemo(o: DemoRunOptions): Promise<DemoResult> {
  if (!(o.mgmcs >= 1 && o.mgmcs <= DEMO_MICROGRIDS.length)) {
    throw new RangeError(`--mgmcs must be 1 to ${DEMO_MICROGRIDS.length}, got ${o.mgmcs}`);
  }
  const dir = resolve(o.dir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'dso'), { recursive: true });
  const passphrase = 'demo passphrase - not for real keys';
  const env = { [PASSPHRASE_VAR]: passphrase };
  const from = DAY_START + (o.fromHour ?? 0) * HOUR;
  const startMs = from - WARM_UP_MS;
  const endMs = from + o.hours * HOUR;
  const time = new DemoTime(startMs, o.speed);
  const clock = time.clock;
  const phase = (text: string) => o.progress({ kind: 'phase', text });
  const wallStarted = performance.now();

  phase('starting the broker (in-process, MQTT on loopback)');
  const broker = await startEmbeddedBroker({ port: 0 });
  const closers: Array<() => Promise<void>> = [() => broker.close()];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) {
      await close().catch((err: Error) => o.logger.error({ module: 'demo', err: err.message }, 'closing failed'));
    }
  };
  try {
    const chosen = DEMO_MICROGRIDS.slice(0, o.mgmcs);
    phase(`creating keys for the DSO and ${chosen.length} MGMCs (v3 keystores)`);
    const dsoKey = generateKeyPair();
    await writeKeystoreFile(join(dir, 'dso', 'key.json'), dsoKey.privateKey, passphrase, { kdf: 'pbkdf2' });
    const genesis = { chainId: DEMO_CHAIN_ID, name: 'ieee33', time: 0, validators: [dsoKey.address] };
    writeFileSync(join(dir, 'dso', 'genesis.json'), `${JSON.stringify(genesis, null, 2)}\n`);
    const keys = chosen.map(() => generateKeyPair());

    phase(`starting ${chosen.length} simulated sites (devices on loopback Modbus TCP)`);
    const grids: Grid[] = [];
    for (const [i, m] of chosen.entries()) {
      const gdir = join(dir, m.name);
      mkdirSync(gdir, { recursive: true });
      await writeKeystoreFile(join(gdir, 'key.json'), keys[i]!.privateKey, passphrase, { kdf: 'pbkdf2' });
      const sitePath = join(gdir, 'sim-site.yaml');
      writeFileSync(sitePath, simSiteYaml(m, new Date(startMs).toISOString(), o.seed + i));
      const sim = await startSimulatedSite(sitePath, { clock: time.wall, speed: o.speed });
      closers.push(() => sim.close());
      const configPath = join(gdir, 'mgmc.yaml');
      writeFileSync(
        configPath,
        mgmcYaml(m, { brokerUrl: broker.url, fieldSections: sim.agentConfig(), genesis: '../dso/genesis.json' }),
      );
      const config = await loadConfig(configPath, { env });
      const anonym = deriveAnonymKey(keys[i]!.privateKey, DEMO_CHAIN_ID, config.dso.anonymEpoch).address.toLowerCase();
      grids.push({ m, sim, config, anonym, steps: [], results: new Map() });
    }

    phase('starting the DSO node (registry, DSO chain, grid security on IEEE 33, market sequencer)');
    writeFileSync(join(dir, 'dso', 'dso.yaml'), dsoYaml({ brokerUrl: broker.url, allow: keys.map((k) => k.address) }));
    const dsoConfig = await loadConfig(join(dir, 'dso', 'dso.yaml'), { env });
    const feeder = createFeeder(ieee33());
    // The feeder's published loads are its peak; the rest of the town at half of it is a typical hour.
    const base = busLoads(feeder, { scale: 0.5 });
    const firstPositions = new Map<number, readonly ReportedPosition[]>();
    const lastPositions = new Map<number, readonly ReportedPosition[]>();
    const adjustments = new Map<number, number>();
    const summaries = new Map<number, IntervalSummary>();
    let dso: RunningDso | undefined;
    let running = true;
    const onInterval = (summary: IntervalSummary) => {
      // An attempt may end while the agents stop; by then the run's figures are taken.
      if (!running) return;
      summaries.set(summary.interval, summary);
      const positions = dso?.grid?.positions(summary.interval);
      if (positions !== undefined && positions.length > 0) lastPositions.set(summary.interval, positions);
      // The MGMCs hold the standing final by now: the check after it waited for their positions.
      for (const g of grids) {
        const result = g.agent?.market?.market.participant.result(summary.interval);
        if (result !== undefined) g.results.set(summary.interval, result);
      }
      o.progress({ kind: 'interval', line: intervalLine(summary, grids, adjustments, dso) });
    };
    const minutes = (m: number) => m * 60_000;
    const gridSolver = await o.createSolver?.();
    if (gridSolver !== undefined) closers.push(() => gridSolver.close());
    dso = await startDso(dsoConfig, {
      clock,
      logger: o.logger,
      registryRefreshMs: 2000,
      grid: {
        feeder,
        ...(gridSolver === undefined ? {} : { solver: gridSolver }),
        base: () => base,
        intervalMs: MARKET_MS,
        resendMs: minutes(5),
        onRound: (round, positions) => {
          if (!firstPositions.has(round.interval)) firstPositions.set(round.interval, positions);
          adjustments.set(round.interval, (adjustments.get(round.interval) ?? 0) + round.sent.length);
        },
      },
      market: {
        prices: () => ({
          grid: { importPrice: microPerKWh(DEMO_PRICES.import), exportPrice: microPerKWh(DEMO_PRICES.export) },
          imbalancePrice: microPerKWh(DEMO_PRICES.imbalance),
        }),
        // Simulated time. An interval's market opens 100 minutes ahead (while the one before may still bargain), so
        // at 900x its attempts get six wall seconds; a phase ends as soon as every MGMC has answered, at the latest
        // after 5 simulated minutes.
        timing: {
          intervalMs: MARKET_MS,
          leadMs: minutes(100),
          gateMs: minutes(5),
          phaseMs: minutes(5),
          positionWaitMs: minutes(5),
          deliveryDelayMs: minutes(5),
          deliveryWaitMs: minutes(5),
        },
        roundCap: 30,
        maxAttempts: 3,
        onInterval,
      },
    });
    const runningDso = dso;
    closers.push(() => runningDso.stop());

    phase(`starting ${grids.length} MGMC agents (poll, ledger, optimizer, market, DSO link)`);
    for (const g of grids) {
      const solver = await o.createSolver?.();
      if (solver !== undefined) closers.push(() => solver.close());
      g.agent = await startMgmc(g.config, { clock, logger: o.logger, ...(solver === undefined ? {} : { solver }) });
      const agent = g.agent;
      closers.push(() => agent.stop());
    }

    phase(
      `running ${new Date(startMs).toISOString()} to ${new Date(endMs).toISOString()} at ${o.speed}x ` +
        `(about ${Math.round((endMs - startMs) / o.speed / 1000)} s)`,
    );
    time.start();
    await sampleUntil(time, endMs, grids);

    running = false;
    runningDso.market?.stop();
    phase('sealing the last blocks and waiting for the DSO to anchor them');
    const heights = new Map<string, number>();
    for (const g of grids) {
      const agent = g.agent as RunningMgmc;
      for (const [interval] of summaries) {
        const result = agent.market?.market.participant.result(interval);
        if (result !== undefined && !g.results.has(interval)) g.results.set(interval, result);
      }
      agent.ledger.seal();
      heights.set(agent.address.toLowerCase(), agent.ledger.sealedHeight);
    }
    await waitFor(
      () =>
        grids.every(
          (g) => runningDso.store.lastAcceptedHeight(g.agent!.address) >= heights.get(g.agent!.address.toLowerCase())!,
        ),
      30_000,
    );
    await waitFor(() => runningDso.store.pendingCount() === 0, 10_000);

    phase('verifying every chain');
    const ledgers: LedgerReport[] = grids.map((g) => {
      const agent = g.agent as RunningMgmc;
      const report = verifyChain(storeSource(agent.store));
      const sync = agent.sync?.stats();
      return {
        name: g.m.name,
        address: agent.address,
        blocksSigned: agent.ledger.sealedHeight,
        records: agent.ledger.lastSeq,
        anchoredHeight: sync?.anchoredHeight ?? 0,
        heldByDso: runningDso.store.lastAcceptedHeight(agent.address),
        chainOk: report.ok,
      };
    });
    const dsoCheck = verifyDsoStore(runningDso.store, genesis);
    const stats = runningDso.stats();
    const rejected = Object.values(stats.blocks.rejected).reduce((a, b) => a + (b ?? 0), 0);
    const microgrids = grids.map((g) => microgridReport(g));
    const market = [...summaries.values()]
      .sort((a, b) => a.interval - b.interval)
      .map((s) => marketReport(s, grids, adjustments));
    const worst = worstInterval(feeder, base, firstPositions);
    const profiles = [];
    if (worst !== undefined) {
      const when = new Date(worst).toISOString().slice(11, 16);
      const before = firstPositions.get(worst) ?? [];
      const after = lastPositions.get(worst) ?? before;
      profiles.push(
        { label: `${when} UTC as first bargained`, voltagesPu: voltages(feeder, base, before) },
        { label: `${when} UTC after the DSO's caps`, voltagesPu: voltages(feeder, base, after) },
      );
    }
    profiles.push({
      label: 'no microgrids (the rest of the town at half load)',
      voltagesPu: voltages(feeder, base, []),
    });

    const traded = market.some((m) => m.trades > 0);
    const costsComputed = microgrids.every((m) => Number.isFinite(m.costBaseline) && Number.isFinite(m.costActual));
    const held = ledgers.every((l) => l.heldByDso >= l.blocksSigned && l.blocksSigned > 0);
    const checks = [
      ...ledgers.map((l) => ({
        name: `${l.name}'s ledger verifies`,
        ok: l.chainOk,
        detail: `${l.blocksSigned} blocks, ${l.records} records, signatures, links and Merkle roots`,
      })),
      {
        name: 'the DSO chain verifies',
        ok: dsoCheck.ok,
        detail: dsoCheck.detail,
      },
      {
        name: 'the DSO holds every MGMC block',
        ok: held,
        detail: ledgers.map((l) => `${l.name} ${l.heldByDso}/${l.blocksSigned}`).join(', '),
      },
      {
        name: 'energy was traded peer to peer',
        ok: traded,
        detail: `${market.filter((m) => m.trades > 0).length} of ${market.length} intervals with trades`,
      },
      { name: 'costs computed for every MGMC', ok: costsComputed, detail: 'baseline and with the market' },
    ];
    const report: DemoReportData = {
      title: `mgmc-agent demo: ${grids.length} microgrids on the IEEE 33-bus feeder`,
      generatedAt: new Date().toISOString(),
      options: { durationHours: o.hours, mgmcs: o.mgmcs, seed: o.seed, speed: o.speed },
      wallSeconds: (performance.now() - wallStarted) / 1000,
      startMs,
      stepMinutes: STEP_MS / 60_000,
      currency: 'EUR',
      microgrids,
      market,
      feeder: {
        name: feeder.name,
        buses: feeder.buses.map((b) => b.name),
        vMin: feeder.voltageBand.min,
        vMax: feeder.voltageBand.max,
        profiles,
        mgmcBuses: grids.map((g) => g.m.bus),
      },
      ledgers,
      dso: {
        chainHeight: stats.dsoHeight,
        blocksReceived: stats.blocks.accepted + stats.blocks.duplicate + rejected,
        blocksVerified: stats.blocks.accepted,
        blocksRejected: rejected,
        chainOk: dsoCheck.ok,
      },
      checks,
    };
    phase('stopping');
    await closeAll();
    return { report, ok: checks.every((c) => c.ok) };
  } finally {
    await closeAll();
  }
}

/** Samples every site at each schedule step until `endMs`; returns when the simulated clock gets there. */
async function sampleUntil(time: DemoTime, endMs: number, grids: readonly Grid[]): Promise<void> {
  let next = Math.ceil(time.clock.now() / STEP_MS) * STEP_MS;
  while (next <= endMs) {
    await sleep(time.wallMsUntil(next));
    for (const g of grids) g.steps.push(sample(g, next));
    next += STEP_MS;
  }
}

function sample(g: Grid, t: number): Sample {
  const snapshot = g.sim.site.snapshot();
  let gridW = 0;
  let pvW = 0;
  let batteryW = 0;
  let loadW = 0;
  let evW = 0;
  let socPct: number | null = null;
  for (const d of Object.values(snapshot.devices)) {
    if (d.kind === 'meter' && d.name === 'grid-meter') gridW = d.activePowerW;
    else if (d.kind === 'pv-inverter') pvW += d.acPowerW;
    else if (d.kind === 'battery') {
      batteryW += d.powerW;
      socPct = d.socPct;
    } else if (d.kind === 'building-load') loadW += d.powerW;
    else if (d.kind === 'ev-charger') evW += d.powerW;
  }
  const meter = snapshot.devices['grid-meter'];
  const plan = g.agent?.optimizer?.service.current();
  let plannedBatteryW: number | null = null;
  let plannedGridW: number | null = null;
  if (plan !== undefined) {
    const k = Math.floor((t - plan.horizon.start) / plan.horizon.stepMs);
    if (k >= 0 && k < plan.horizon.steps) {
      plannedGridW = plan.netPositionW[k] ?? null;
      const battery = plan.buildings[0]?.ders.find((d) => d.kind === 'battery');
      plannedBatteryW = battery === undefined ? null : (battery.powerW[k] ?? null);
    }
  }
  return {
    t,
    gridW,
    pvW,
    batteryW,
    loadW,
    evW,
    socPct,
    plannedBatteryW,
    plannedGridW,
    ...(meter?.kind === 'meter' ? { meterImportWh: meter.importEnergyWh, meterExportWh: meter.exportEnergyWh } : {}),
  };
}

/**
 * Cost of the day: the metered energy at the connection point, per market interval. Without trading it is all
 * priced at the site's tariff; with the market, the energy the MGMC bought or sold peer to peer is paid at the trade
 * prices and only the rest at the tariff. The physical flows are the ones that happened (with the market on).
 */
function microgridReport(g: Grid): MicrogridReport {
  const agent = g.agent as RunningMgmc;
  const tariff = (t: number) => {
    const hour = Number(LOCAL_HOUR.format(t));
    const night = g.m.nightTariff && (hour >= 22 || hour < 6);
    return { import: night ? DEMO_PRICES.night : DEMO_PRICES.import, export: DEMO_PRICES.export };
  };
  let costBaseline = 0;
  let costActual = 0;
  let soldWh = 0;
  let boughtWh = 0;
  const steps = g.steps;
  for (let i = 1; i < steps.length; i++) {
    const a = steps[i - 1]!;
    const b = steps[i]!;
    if (a.meterImportWh === undefined || b.meterImportWh === undefined) continue;
    const importWh = b.meterImportWh - a.meterImportWh;
    const exportWh = (b.meterExportWh ?? 0) - (a.meterExportWh ?? 0);
    const price = tariff(a.t);
    costBaseline += (importWh * price.import - exportWh * price.export) / 1000;
    const interval = Math.floor(a.t / MARKET_MS) * MARKET_MS;
    const result = g.results.get(interval);
    const share = STEP_MS / MARKET_MS;
    let net = importWh - exportWh;
    let payments = 0;
    const self = g.anonym;
    for (const trade of result?.own ?? []) {
      // A trade is for the whole market interval; it is spread evenly over the interval's steps.
      const qty = trade.qtyWh * share;
      const value = (qty * trade.price) / 1e6 / 1000;
      if (trade.buyer.toLowerCase() === self) {
        payments += value;
        net -= qty;
      } else {
        payments -= value;
        net += qty;
      }
    }
    costActual += payments + (net >= 0 ? (net * price.import) / 1000 : (net * price.export) / 1000);
  }
  for (const result of g.results.values()) {
    for (const trade of result.own) {
      if (trade.buyer.toLowerCase() === g.anonym) boughtWh += trade.qtyWh;
      else soldWh += trade.qtyWh;
    }
  }
  return {
    name: g.m.name,
    bus: g.m.bus,
    address: agent.address,
    description: g.m.description,
    steps: g.steps.map(({ t, gridW, pvW, batteryW, loadW, evW, socPct, plannedBatteryW, plannedGridW }) => ({
      t,
      gridW,
      pvW,
      batteryW,
      loadW,
      evW,
      socPct,
      plannedBatteryW,
      plannedGridW,
    })),
    costBaseline: round2(costBaseline),
    costActual: round2(costActual),
    soldWh,
    boughtWh,
  };
}

function marketReport(
  s: IntervalSummary,
  grids: readonly Grid[],
  adjustments: ReadonlyMap<number, number>,
): MarketIntervalReport {
  const trades = standingTrades(s.interval, grids);
  const volumeWh = trades.reduce((a, t) => a + t.qtyWh, 0);
  const prices = trades.map((t) => t.price / 1e6);
  return {
    interval: s.interval,
    durationMinutes: DEMO_MARKET_MINUTES,
    attempts: s.attempts.length,
    rounds: s.attempts.reduce((a, x) => a + x.rounds, 0),
    trades: trades.length,
    volumeWh,
    priceAvg: volumeWh > 0 ? round3(trades.reduce((a, t) => a + (t.qtyWh * t.price) / 1e6, 0) / volumeWh) : null,
    priceMin: prices.length > 0 ? Math.min(...prices) : null,
    priceMax: prices.length > 0 ? Math.max(...prices) : null,
    adjustments: adjustments.get(s.interval) ?? 0,
    importPrice: DEMO_PRICES.import,
    exportPrice: DEMO_PRICES.export,
    closedBy: s.closedBy,
  };
}

function standingTrades(interval: number, grids: readonly Grid[]) {
  for (const g of grids) {
    const result = g.results.get(interval);
    if (result !== undefined) return result.trades;
  }
  return [];
}

function intervalLine(
  s: IntervalSummary,
  grids: readonly Grid[],
  adjustments: ReadonlyMap<number, number>,
  dso: RunningDso | undefined,
): IntervalLine {
  const m = marketReport(s, grids, adjustments);
  let anchored = 0;
  for (const g of grids) anchored += g.agent?.sync?.stats().anchoredHeight ?? 0;
  return {
    interval: s.interval,
    attempts: m.attempts,
    closedBy: s.closedBy,
    trades: m.trades,
    volumeWh: m.volumeWh,
    priceAvg: m.priceAvg,
    adjustments: m.adjustments,
    anchored,
    dsoHeight: dso?.stats().dsoHeight ?? 0,
  };
}

/** The interval whose first-bargained positions put the feeder furthest outside its voltage band. */
function worstInterval(
  feeder: ReturnType<typeof createFeeder>,
  base: ReturnType<typeof busLoads>,
  positions: ReadonlyMap<number, readonly ReportedPosition[]>,
): number | undefined {
  let worst: number | undefined;
  let worstBy = 0;
  for (const [interval, list] of positions) {
    const v = voltages(feeder, base, list);
    const by = Math.max(...v.map((x) => Math.max(feeder.voltageBand.min - x, x - feeder.voltageBand.max)));
    if (worst === undefined || by > worstBy) {
      worst = interval;
      worstBy = by;
    }
  }
  return worst;
}

function voltages(
  feeder: ReturnType<typeof createFeeder>,
  base: ReturnType<typeof busLoads>,
  positions: readonly ReportedPosition[],
): number[] {
  const result = powerFlow(feeder, loadsWithPositions(feeder, base, positions));
  return result.buses.map((b) => round4(b.vPu));
}

/** Walks the DSO chain from genesis: every header's link and seals, and every block's anchored-entries root. */
function verifyDsoStore(
  store: DsoChainStore,
  genesis: { readonly chainId: number; readonly validators: readonly string[] },
): { ok: boolean; detail: string } {
  let prev: DsoParent = { ...genesis, validators: genesis.validators as Address[] } as unknown as DsoParent;
  const last = store.lastBlock()?.height ?? 0;
  let entries = 0;
  for (let h = 1; h <= last; h++) {
    const row = store.blockAt(h);
    if (row === undefined) return { ok: false, detail: `block ${h} is missing` };
    const header = JSON.parse(new TextDecoder().decode(row.header)) as DsoHeader;
    const seals: string[] = [];
    for (let i = 0; i < row.seals.length; i += 65) seals.push(toHex(row.seals.subarray(i, i + 65)));
    const check = verifyDsoHeader(header, seals, genesis.validators as Address[], prev);
    if (!check.ok) return { ok: false, detail: `block ${h}: ${check.detail}` };
    const anchoredEntries = store.entriesOf(h);
    if (entriesRoot(anchoredEntries.map((e) => toHex(e.headerHash))) !== header.root) {
      return { ok: false, detail: `block ${h}: its entries do not give the root in its header` };
    }
    entries += anchoredEntries.length;
    prev = header;
  }
  return { ok: last > 0, detail: `${last} blocks anchoring ${entries} MGMC blocks, seals and links from genesis` };
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) {
    await sleep(100);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
const round4 = (x: number) => Math.round(x * 10_000) / 10_000;
