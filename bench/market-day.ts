/**
 * npm run bench -- market-day: the message-driven market (session.ts participants, the DSO's sequencer) for a day of
 * hourly intervals on the IEEE 33-bus feeder, with the real optimizer's price-response curves (HiGHS, building cases
 * scaled to microgrids, the same four as test/integration/market-day.test.ts) and the DSO's network check between
 * attempts. Transport: function calls (no broker), so the figures are the market's and the check's own work.
 *
 * References in the same run: the in-process runBargaining on the same (final, capped) curves for the time, the
 * centralized welfare optimum over the same capped curves (HiGHS) for the gap, and the violations the first attempt's
 * positions cause for what the DSO-market iterations removed.
 */
import { performance } from 'node:perf_hooks';
import { systemClock } from '../agent/clock.js';
import { type MarketSecurity, MarketSequencer } from '../agent/dso/market-sequencer.js';
import { checkNetwork, type ReportedPosition } from '../agent/dso/network-check.js';
import { createFeeder } from '../agent/grid/feeder.js';
import { ieee33 } from '../agent/grid/ieee33.js';
import { busLoads } from '../agent/grid/powerflow.js';
import { type Address, generateKeyPair } from '../agent/identity/keys.js';
import { signerFromPrivateKey } from '../agent/ledger/block.js';
import type { Envelope } from '../agent/link/envelope.js';
import { capCurve, marketCurve } from '../agent/link/market-runtime.js';
import { silentLogger } from '../agent/logger.js';
import { DEFAULT_BARGAINING, runBargaining } from '../agent/market/bargaining.js';
import type { PriceResponseCurve } from '../agent/market/curve.js';
import { MarketParticipant, parseSeal, sealBody } from '../agent/market/session.js';
import { centralOptimum, evaluateOutcome, welfareGap } from '../agent/market/welfare.js';
import { loadHighsEngine } from '../agent/optimizer/highs.js';
import { priceResponse } from '../agent/optimizer/optimize.js';
import { createInlineSolver, type Solver } from '../agent/optimizer/solver.js';
import { namedCases } from './optimizer-cases.js';
import type { BenchReport, BenchRow } from './report.js';

const CHAIN = 9_001;
const Q = 900_000;
const HOUR = 3_600_000;
const GRID = { importPrice: 300_000, exportPrice: 80_000 };
const IMBALANCE = 350_000;

/** A building case's day of hourly market curves (four optimizer steps each), scaled to `scale` buildings. */
export async function dayCurves(
  caseName: string,
  scale: number,
  day: number,
  solver: Solver,
  options: { withoutPv?: boolean; pvScale?: number } = {},
): Promise<Map<number, PriceResponseCurve>> {
  const found = namedCases(96).find((c) => c.name === caseName);
  if (found === undefined) throw new Error(`no building case ${caseName}`);
  const k = options.pvScale ?? 1;
  const site = {
    ...found.site,
    buildings: found.site.buildings.map((b) => ({
      ...b,
      pv: options.withoutPv
        ? []
        : b.pv.map((pv) => ({ ...pv, ratedW: pv.ratedW * k, forecastW: pv.forecastW.map((w) => w * k) })),
    })),
  };
  const curves = await priceResponse(site, solver, { steps: Array.from({ length: 96 }, (_, t) => t) });
  const out = new Map<number, PriceResponseCurve>();
  for (let h = 0; h < 24; h++) {
    const interval = day + h * HOUR;
    const hour = marketCurve(curves.slice(h * 4, h * 4 + 4), interval, Q);
    out.set(interval, { interval, points: hour.points.map((p) => ({ price: p.price, netWh: p.netWh * scale })) });
  }
  return out;
}

/** The four microgrids of the IEEE 33 scenario: bus, building case, scale, options. */
export const IEEE33_MICROGRIDS = [
  { name: 'end', bus: '18', case: 'pv-only', scale: 100, options: { pvScale: 3 } },
  { name: 'mid', bus: '14', case: 'pv-battery', scale: 30, options: { pvScale: 2 } },
  { name: 'factory', bus: '25', case: 'flexible-loads', scale: 60, options: { withoutPv: true } },
  { name: 'ev', bus: '30', case: 'pv-battery-ev', scale: 20, options: {} },
] as const;

type Caps = { maxImportW?: number; maxExportW?: number };

export async function run(_args: readonly string[]): Promise<BenchReport> {
  const solver = await createInlineSolver();
  const engine = await loadHighsEngine();
  const feeder = createFeeder(ieee33());
  const base = busLoads(feeder, { scale: 0.5 });
  const day = Date.UTC(2031, 5, 2);
  const clock = systemClock();
  const tc = performance.now();
  const grids = await Promise.all(
    IEEE33_MICROGRIDS.map(async (m) => ({
      ...m,
      key: generateKeyPair(),
      curves: await dayCurves(m.case, m.scale, day, solver, m.options),
    })),
  );
  const curvesMs = performance.now() - tc;
  const caps = new Map<string, Map<number, Caps>>(grids.map((g) => [g.key.address, new Map()]));
  const positions = new Map<number, Map<string, { netW: number; time: number }>>();
  let now = 0;
  const cappedCurve = (anonym: string, interval: number): PriceResponseCurve | undefined => {
    const g = grids.find((x) => x.key.address === anonym);
    const curve = g?.curves.get(interval);
    return curve === undefined ? undefined : capCurve(curve, caps.get(anonym)?.get(interval), HOUR);
  };
  let sequencer: MarketSequencer | undefined;
  const participants = grids.map(
    (g) =>
      new MarketParticipant({
        chainId: CHAIN,
        signer: signerFromPrivateKey(g.key.privateKey, g.key.address),
        curve: async (interval) => cappedCurve(g.key.address, interval),
        logger: silentLogger(),
        send: async (_interval, _kind, body) => {
          const envelope = { from: g.key.address, body } as unknown as Envelope;
          sequencer?.acceptMove(envelope);
        },
        onFinal: (r) => {
          const netW = -Math.round((r.positionWh * HOUR) / HOUR);
          const list = positions.get(r.interval) ?? new Map();
          list.set(g.key.address, { netW, time: ++now });
          positions.set(r.interval, list);
        },
      }),
  );
  const reported = (interval: number): ReportedPosition[] =>
    grids.map((g) => ({
      mgmc: g.key.address,
      bus: g.bus,
      netW: positions.get(interval)?.get(g.key.address)?.netW ?? 0,
    }));
  const firstViolations = new Map<number, number>();
  const security: MarketSecurity = {
    mgmcOf: (anonym) => anonym,
    positionTime: (interval, mgmc) => positions.get(interval)?.get(mgmc)?.time,
    check: async (interval) => {
      const check = await checkNetwork(feeder, reported(interval), solver, { base });
      if (!firstViolations.has(interval)) firstViolations.set(interval, check.before.violations.length);
      for (const c of check.caps) {
        const held = caps.get(c.mgmc)?.get(interval) ?? {};
        const min = (a?: number, b?: number) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
        const merged: Caps = {};
        const imp = min(held.maxImportW, c.maxImportW);
        const exp = min(held.maxExportW, c.maxExportW);
        if (imp !== undefined) merged.maxImportW = imp;
        if (exp !== undefined) merged.maxExportW = exp;
        caps.get(c.mgmc)?.set(interval, merged);
      }
      return { sent: check.caps.length, secure: check.secure };
    },
    pendingAcks: () => 0,
  };
  sequencer = new MarketSequencer({
    chainId: CHAIN,
    clock,
    logger: silentLogger(),
    anonyms: () => grids.map((g) => g.key.address as Address),
    prices: () => ({ grid: GRID, imbalancePrice: IMBALANCE }),
    publish: async (_interval, seal) => {
      const parsed = parseSeal(JSON.parse(JSON.stringify(sealBody(seal))));
      await Promise.all(participants.map((p) => p.onSeal(parsed)));
    },
    maxAttempts: 3,
    timing: { intervalMs: HOUR, leadMs: 10 * 365 * 86_400_000, gateMs: 60_000, phaseMs: 5_000 },
    security,
  });
  // Warm HiGHS (its first solves are slower) so no interval is charged for it.
  await checkNetwork(feeder, reported(day), solver, { base });

  let marketMs = 0;
  let inProcessMs = 0;
  let attempts = 0;
  let capped = 0;
  let rounds = 0;
  let messages = 0;
  let welfare = 0;
  let optimum = 0;
  let worstGap = 0;
  let violationsAfter = 0;
  let tradedWh = 0;
  for (let h = 0; h < 24; h++) {
    const interval = day + h * HOUR;
    const t0 = performance.now();
    const summary = await sequencer.runInterval(interval);
    marketMs += performance.now() - t0;
    attempts += summary.attempts.length;
    if (summary.attempts.length > 1) capped++;
    const last = summary.attempts.at(-1);
    rounds += last?.rounds ?? 0;
    messages += summary.attempts.reduce((s, a) => s + a.messages, 0);
    tradedWh += last?.tradedWh ?? 0;
    const after = await checkNetwork(feeder, reported(interval), solver, { base });
    violationsAfter += after.before.violations.length;
    // References on the final (capped) curves: in-process bargaining time, and the centralized optimum.
    const finalCurves = grids.map((g) => cappedCurve(g.key.address, interval) as PriceResponseCurve);
    const bargainers = grids.map((g, i) => ({ anonym: g.key.address, curve: finalCurves[i] as PriceResponseCurve }));
    const t1 = performance.now();
    const reference = runBargaining(bargainers, {
      chainId: CHAIN,
      interval,
      grid: GRID,
      gateClosure: interval - 60_000,
      params: DEFAULT_BARGAINING,
    });
    inProcessMs += performance.now() - t1;
    const wp = grids.map((g, i) => ({ id: g.key.address, curve: finalCurves[i] as PriceResponseCurve }));
    const central = await centralOptimum(wp, GRID, (lp) => engine.solve(lp));
    // The message-driven market's own outcome (each participant's standing result).
    const results = participants.map((p) => p.result(interval));
    if (results.some((r, i) => r?.positionWh !== reference.outcomes[i]?.positionWh)) {
      throw new Error(`hour ${h}: the message-driven market ended elsewhere than runBargaining on the same curves`);
    }
    const gridNet = results.map((r) => (r?.positionWh ?? 0) - (r?.p2pNetWh ?? 0));
    const outcome = evaluateOutcome(
      wp,
      GRID,
      results.map((r) => r?.positionWh ?? 0),
      gridNet.reduce((s, x) => s + Math.max(0, -x), 0),
      gridNet.reduce((s, x) => s + Math.max(0, x), 0),
    );
    welfare += outcome.welfare;
    optimum += central.evaluation.welfare;
    worstGap = Math.max(worstGap, welfareGap(central.evaluation.welfare, outcome.welfare));
  }
  sequencer.stop();
  await solver.close();
  const violationsBefore = [...firstViolations.values()].reduce((s, n) => s + n, 0);
  const rows: BenchRow[] = [
    {
      metric: 'market wall time per hour interval (all attempts, checks)',
      unit: 'ms',
      ours: marketMs / 24,
      referenceName: 'in-process runBargaining, final curves',
      reference: inProcessMs / 24,
    },
    {
      metric: 'DSO-market attempts per capped interval (until secure)',
      unit: 'attempts',
      ours: capped === 0 ? 0 : (attempts - (24 - capped)) / capped,
      referenceName: 'maxAttempts',
      reference: 3,
    },
    {
      metric: 'limit violations at the first attempt / after the last',
      unit: 'violations',
      ours: violationsAfter,
      referenceName: 'first attempt',
      reference: violationsBefore,
    },
    {
      metric: 'day welfare (cost saved vs grid only), within caps',
      unit: 'currency',
      ours: welfare / 1e6,
      referenceName: 'centralized optimum (HiGHS)',
      reference: optimum / 1e6,
      higherIsBetter: true,
    },
  ];
  return {
    name: 'market-day',
    rows,
    notes: [
      `IEEE 33-bus feeder at half load; 4 microgrids (buses 18, 14, 25, 30) with the optimizer's curves; 24 hourly intervals`,
      `${capped} of 24 intervals capped by the DSO and re-traded; ${rounds} rounds and ${messages} moves over the day`,
      `worst welfare gap of one interval ${(worstGap * 100).toFixed(3)} %; traded ${(tradedWh / 1e6).toFixed(2)} MWh`,
      `optimizer curves for 4 sites x 96 steps: ${curvesMs.toFixed(0)} ms`,
    ],
  };
}
