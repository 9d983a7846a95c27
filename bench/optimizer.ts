/**
 * npm run bench -- optimizer [--quick] [--seed S] [--repeat N] [--days D] [--warmup-days W] [--replan-every K]
 *                            [--curve-intervals N] [--only solve|week]
 *
 * 1. Solve times. For the named building cases of bench/optimizer-cases.ts and a seeded random site, at 96 steps
 *    (a day at 15 min) and 672 (a week): HiGHS in this thread (median and p95 over N solves after warm-up; the
 *    WASM load and the first solve in the process apart), HiGHS in the worker thread (round trip: structured clone
 *    there and back), and glpsol on the same model exported as CPLEX LP text (wall time of the glpsol process,
 *    file writing included), all in the same run. The objectives of the two solvers are compared. The headline row
 *    "96-step building solve" is optimizeSite on the worker solver (check, formulate, solve, extract), the path the
 *    gateway takes, against glpsol on the same LP. Price-response curves: 9 prices × N intervals by warm re-solves of
 *    one loaded model (solveVariants) against the same N×9 programs solved one by one from scratch.
 * 2. A simulated week (15-min intervals) of an office near Munich, exampleSite's devices (10 kWp PV on a 9 kW
 *    inverter, a 15 kW-peak office load) with the simulator's physics (sim/physics: PV from the sky model with clouds
 *    that differ by day, the office load with its noise), a 10 kWh / 5 kW battery (96 % each way, BMS 10-95 %, reserve
 *    20 %) stepped as the simulator's own Battery model (closed-form energy, self-discharge, BMS limits), a
 *    day-ahead-like import price that differs by day (dynamicPrice, seeded per day) and a flat feed-in tariff.
 *    Controllers, each driving its own copy of the battery through the same PV and load:
 *    (a) the optimizer as the gateway runs it: every K intervals (default every interval) a 24 h plan from the
 *        forecasts of agent/optimizer/forecast (PV: clear sky scaled by the last hours of measured PV; load: a
 *        profile learned from the preceding days' measurements plus persistence), executed by the dispatcher's
 *        real-time correction (batteryCorrectionW of agent/optimizer/dispatch.ts, the same function, deadband
 *        200 W): the plan's battery power, plus what keeps the exchange between 0 and the planned net exchange
 *        (export beyond the planned export is charged, import beyond the planned import is taken off planned
 *        charging, never more discharge than planned). The interval's actual mean surplus stands for the meter
 *        (at 15-min resolution the correction sees the interval's actual load - PV against the plan's net);
 *    (b) rule-based self-consumption: charge from PV surplus, discharge to cover load, within the power limits,
 *        the BMS maximum of 95 % and the 20 % reserve; it sees the actual mean surplus of each interval;
 *    (c) no battery;
 *    and for diagnosis: (d) the optimizer's plan followed as it is (the planned battery power is the setpoint,
 *    no correction: what the forecasts alone achieve); (e) the optimizer on perfect forecasts (the actual PV and
 *    load), plan followed.
 *    Warm-up: W days (default 14) before the scored days only give the forecasts their history, as on a gateway that
 *    has run for two weeks: the load profile learns from up to 14 days (forecast/index.ts historyDays) and tells
 *    weekdays from weekends once it has two of each, so 14 days is the history it is designed for. With fewer the
 *    first weekend is forecast from weekdays (a new installation: pass --warmup-days 2 to see that). exampleSite
 *    starts on a Monday, so the default scores Monday to Sunday of the third week.
 *    Cost of a day = Σ import × price - export × feed-in + battery wear, the wear at the same degradation cost for
 *    every controller (0.03 per kWh passed through, half on charge, half on discharge, as the optimizer's model).
 *    Each day is reported twice: raw, and with the change in stored energy valued, for every controller alike:
 *    (energy in the cells at midnight - at the previous midnight) × (0.96 × the next day's mean import price - 0.015
 *    wear), i.e. a kWh left in the cells displaces 0.96 kWh of import the next day at its mean price, less the wear
 *    of discharging it. A battery that buys cheap energy before midnight for the morning peak pays for it on one day
 *    and saves on the next; the valued cost puts both on the day that decided it.
 *    Energies are netted per 15-min interval (the devices' interval means), for every controller alike. Prices are
 *    taken as known for the whole 24 h horizon (a day-ahead tariff published for the next day would cover it
 *    from the afternoon on only).
 *
 * Deterministic for a seed (clouds, load noise, prices); timings are not.
 */

import { batteryCorrectionW } from '../agent/optimizer/dispatch.js';
import type { HistorySource, PowerSample } from '../agent/optimizer/forecast/history.js';
import { createLedgerForecaster, type Forecaster } from '../agent/optimizer/forecast/index.js';
import { formulate } from '../agent/optimizer/formulate.js';
import { glpsolPath, solveWithGlpsol } from '../agent/optimizer/glpsol.js';
import type { LinearProgram, LpResult, LpVariant } from '../agent/optimizer/lp.js';
import { toCplexLp } from '../agent/optimizer/lp-format.js';
import type { Battery as BatteryModel, Horizon, SiteModel } from '../agent/optimizer/model.js';
import { optimizeSite, priceBand } from '../agent/optimizer/optimize.js';
import { createInlineSolver, createWorkerSolver, type Solver } from '../agent/optimizer/solver.js';
import { Battery as SimBattery } from '../sim/physics/battery.js';
import { GridModel } from '../sim/physics/grid.js';
import { BuildingLoad, type LoadParams } from '../sim/physics/load.js';
import { PvInverter, type PvParams } from '../sim/physics/pv.js';
import { exampleSite, type SiteLocation } from '../sim/physics/site.js';
import { SolarResource } from '../sim/physics/solar.js';
import { deriveSeed, Rng } from '../sim/random.js';
import { battery as caseBattery, dynamicPrice, namedCases, randomSite } from './optimizer-cases.js';
import type { BenchReport, BenchRow } from './report.js';

const STEP_MS = 15 * 60_000;
const DAY_MS = 86_400_000;
const STEPS_PER_DAY = DAY_MS / STEP_MS;
const DT_H = STEP_MS / 3_600_000;
const FEED_IN = 0.08;
const DEADBAND_W = 200;

// ---------------------------------------------------------------------------------------------------------------
// Options

interface Options {
  readonly quick: boolean;
  readonly seed: number;
  readonly repeat96: number;
  readonly repeat672: number;
  readonly days: number;
  readonly warmupDays: number;
  readonly replanEvery: number;
  readonly curveIntervals: number;
  /** Run one part only. */
  readonly only: 'solve' | 'week' | undefined;
}

function intOption(args: readonly string[], name: string, fallback: number, min = 1): number {
  const i = args.indexOf(name);
  if (i === -1) return fallback;
  const n = Number(args[i + 1]);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got ${args[i + 1]}`);
  return n;
}

function parseOptions(args: readonly string[]): Options {
  const quick = args.includes('--quick');
  const repeat = intOption(args, '--repeat', quick ? 3 : 30);
  const i = args.indexOf('--only');
  const only = i === -1 ? undefined : args[i + 1];
  if (only !== undefined && only !== 'solve' && only !== 'week') {
    throw new Error(`--only takes solve or week, got ${only}`);
  }
  return {
    only,
    quick,
    seed: intOption(args, '--seed', 20240617, 0),
    repeat96: repeat,
    repeat672: Math.max(1, Math.round(repeat / 3)),
    days: intOption(args, '--days', quick ? 2 : 7),
    warmupDays: intOption(args, '--warmup-days', 14, 0),
    replanEvery: intOption(args, '--replan-every', 1),
    curveIntervals: Math.min(96, intOption(args, '--curve-intervals', quick ? 8 : 96)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: p95 of 30 samples is the 29th, a value that was measured.
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

const median = (values: readonly number[]) => quantile(values, 0.5);

// ---------------------------------------------------------------------------------------------------------------
// Part 1: solve times

interface CaseTiming {
  readonly name: string;
  readonly steps: number;
  readonly columns: number;
  readonly rows: number;
  readonly mip: boolean;
  readonly inline: number[];
  readonly worker: number[];
  readonly glpsol: number[];
  readonly highsObjective: number;
  readonly glpsolObjective: number;
}

function sameStatus(lp: LinearProgram, what: string, status: string): void {
  if (status !== 'optimal') throw new Error(`bench optimizer: ${what} (${lp.name}) ended with status ${status}`);
}

async function timeCase(
  name: string,
  site: SiteModel,
  repeat: number,
  inline: Solver,
  worker: Solver,
  withGlpsol: boolean,
): Promise<CaseTiming> {
  const f = formulate(site, `case_${name.replace(/[^A-Za-z0-9_]/g, '_')}_${site.horizon.steps}`);
  const lp = f.lp;
  // Warm-up: the first solves of a shape pay for allocations the later ones reuse.
  for (let i = 0; i < 2; i++) {
    sameStatus(lp, `${name} inline warm-up`, (await inline.solve(lp)).status);
    sameStatus(lp, `${name} worker warm-up`, (await worker.solve(lp)).status);
  }
  const text = withGlpsol ? toCplexLp(lp) : '';
  const inlineMs: number[] = [];
  const workerMs: number[] = [];
  const glpsolMs: number[] = [];
  let highsObjective = Number.NaN;
  let glpsolObjective = Number.NaN;
  // Round by round, so that whatever else the machine does at the time weighs on the three alike.
  for (let i = 0; i < repeat; i++) {
    let t0 = performance.now();
    const r = await inline.solve(lp);
    inlineMs.push(performance.now() - t0);
    highsObjective = r.objective;
    t0 = performance.now();
    await worker.solve(lp);
    workerMs.push(performance.now() - t0);
    if (withGlpsol) {
      const g = await solveWithGlpsol(text, { timeLimitSeconds: 300 });
      sameStatus(lp, `${name} glpsol`, g.status);
      glpsolMs.push(g.wallMs);
      glpsolObjective = g.objective;
    }
  }
  return {
    name,
    steps: site.horizon.steps,
    columns: lp.colNames.length,
    rows: lp.rowNames.length,
    mip: lp.integrality.some((v) => v !== 0),
    inline: inlineMs,
    worker: workerMs,
    glpsol: glpsolMs,
    highsObjective,
    glpsolObjective,
  };
}

/** The same program with one variant's bounds and costs written in: what a cold solve of that variant gets. */
function applyVariant(lp: LinearProgram, v: LpVariant): LinearProgram {
  const colLower = Float64Array.from(lp.colLower);
  const colUpper = Float64Array.from(lp.colUpper);
  const colCost = Float64Array.from(lp.colCost);
  for (const b of v.colBounds ?? []) {
    colLower[b.col] = b.lower;
    colUpper[b.col] = b.upper;
  }
  for (const c of v.colCosts ?? []) colCost[c.col] = c.cost;
  return { ...lp, colLower, colUpper, colCost };
}

interface CurveTiming {
  readonly intervals: number;
  readonly variants: number;
  readonly warmMs: number;
  readonly separateMs: number;
  readonly maxObjectiveRel: number;
  readonly maxNetDiffW: number;
}

/**
 * Price response of the pv-battery case: the program priceResponse builds (a closed buy and sell column per
 * interval, one variant per interval and price opening that interval's pair at that price), solved by solveVariants
 * and by one cold solve per variant.
 */
async function timePriceCurves(site: SiteModel, intervals: number, solver: Solver): Promise<CurveTiming> {
  const T = site.horizon.steps;
  const steps = Array.from({ length: intervals }, (_, i) => Math.floor((i * T) / intervals));
  const limitW = site.buildings.reduce((s, b) => s + Math.max(b.grid.importLimitW, b.grid.exportLimitW), 0);
  const f = formulate({ ...site, market: steps.map((step) => ({ step, price: 0, limitW })) });
  const dt = site.horizon.stepMs / 3_600_000;
  const cols: number[] = [];
  for (const step of steps) cols.push(f.columns.marketBuy[step] ?? -1, f.columns.marketSell[step] ?? -1);
  const closed = new Set(cols);
  const lp: LinearProgram = { ...f.lp, colUpper: Float64Array.from(f.lp.colUpper, (u, j) => (closed.has(j) ? 0 : u)) };
  const variants: LpVariant[] = [];
  // At the band's ends (price = feed-in, price = import) trading and the grid cost the same: any split is optimal.
  const interior: boolean[] = [];
  for (const step of steps) {
    const buy = f.columns.marketBuy[step] ?? -1;
    const sell = f.columns.marketSell[step] ?? -1;
    const band = priceBand(site, step, 9);
    for (const [i, price] of band.entries()) {
      interior.push(i > 0 && i < band.length - 1);
      variants.push({
        colBounds: [
          { col: buy, lower: 0, upper: limitW / 1000 },
          { col: sell, lower: 0, upper: limitW / 1000 },
        ],
        colCosts: [
          { col: buy, cost: price * dt },
          { col: sell, cost: -price * dt },
        ],
      });
    }
  }
  await solver.solveVariants(lp, variants.slice(0, 2), cols);
  const t0 = performance.now();
  const warm = await solver.solveVariants(lp, variants, cols);
  const warmMs = performance.now() - t0;
  const t1 = performance.now();
  const separate: LpResult[] = [];
  for (const v of variants) separate.push(await solver.solve(applyVariant(lp, v)));
  const separateMs = performance.now() - t1;
  let maxObjectiveRel = 0;
  let maxNetDiffW = 0;
  variants.forEach((v, i) => {
    const a = warm[i];
    const b = separate[i];
    if (a?.status !== 'optimal' || b?.status !== 'optimal') {
      throw new Error(`price response variant #${i}: warm ${a?.status}, separate ${b?.status}`);
    }
    maxObjectiveRel = Math.max(
      maxObjectiveRel,
      Math.abs(a.objective - b.objective) / Math.max(1, Math.abs(b.objective)),
    );
    const buy = v.colBounds?.[0]?.col ?? -1;
    const k = cols.indexOf(buy);
    const warmNet = (a.values[k + 1] ?? 0) - (a.values[k] ?? 0);
    const sepNet = (b.colValue[cols[k + 1] ?? 0] ?? 0) - (b.colValue[buy] ?? 0);
    if (interior[i]) maxNetDiffW = Math.max(maxNetDiffW, Math.abs(warmNet - sepNet) * 1000);
  });
  return { intervals, variants: variants.length, warmMs, separateMs, maxObjectiveRel, maxNetDiffW };
}

async function solveTimes(o: Options, rows: BenchRow[], notes: string[], context: Record<string, string | number>) {
  const withGlpsol = glpsolPath() !== undefined;
  if (!withGlpsol) {
    notes.push('GLPSOL IS NOT INSTALLED (Debian glpk-utils): the glpsol reference columns are missing from this run');
  }
  const tLoad = performance.now();
  const inline = await createInlineSolver();
  const loadMs = performance.now() - tLoad;
  const first = namedCases(96).find((c) => c.name === 'pv-battery');
  if (first === undefined) throw new Error('bench optimizer: bench/optimizer-cases.ts has no pv-battery case');
  const firstLp = formulate(first.site).lp;
  const tFirst = performance.now();
  sameStatus(firstLp, 'first solve', (await inline.solve(firstLp)).status);
  const firstSolveMs = performance.now() - tFirst;

  const worker = createWorkerSolver();
  const tWorker = performance.now();
  sameStatus(firstLp, 'worker first solve', (await worker.solve(firstLp)).status);
  const workerFirstMs = performance.now() - tWorker;

  try {
    const timings: CaseTiming[] = [];
    for (const steps of [96, 672]) {
      const repeat = steps === 96 ? o.repeat96 : o.repeat672;
      const cases = [...namedCases(steps), { name: `random-${o.seed}`, site: randomSite(o.seed, steps) }];
      for (const c of cases) {
        // glpsol's branch and bound on the week with negative prices (67 binaries) takes minutes: as in the
        // glpsol test, that one case is left out for glpsol.
        const glpk = withGlpsol && !(steps === 672 && c.name === 'negative-prices');
        timings.push(await timeCase(c.name, c.site, repeat, inline, worker, glpk));
      }
    }

    // The headline: what the gateway does for one building (check, formulate, worker round trip, extract).
    const headline = async (steps: number, repeat: number) => {
      const c = namedCases(steps).find((x) => x.name === 'pv-battery');
      if (c === undefined) throw new Error('no pv-battery case');
      const text = toCplexLp(formulate(c.site).lp);
      for (let i = 0; i < 2; i++) await optimizeSite(c.site, worker);
      const ours: number[] = [];
      const glpsol: number[] = [];
      for (let i = 0; i < repeat; i++) {
        const t0 = performance.now();
        const s = await optimizeSite(c.site, worker);
        ours.push(performance.now() - t0);
        if (s.status !== 'optimal') throw new Error(`optimizeSite on pv-battery ${steps}: ${s.status}`);
        if (withGlpsol) glpsol.push((await solveWithGlpsol(text)).wallMs);
      }
      return { ours, glpsol };
    };
    const h96 = await headline(96, o.repeat96);
    const h672 = await headline(672, o.repeat672);
    const end96 = h96.ours;
    const end672 = h672.ours;
    const pvb = (steps: number) => timings.find((t) => t.name === 'pv-battery' && t.steps === steps);
    const glpsol96 = median(h96.glpsol);
    const glpsol672 = median(h672.glpsol);
    const glpsolRef = withGlpsol ? { referenceName: 'glpsol, same LP (median)' } : {};
    rows.push(
      {
        metric: '96-step building solve: optimizeSite on the worker, pv-battery, median',
        unit: 'ms',
        ours: median(end96),
        ...glpsolRef,
        ...(withGlpsol ? { reference: glpsol96 } : {}),
        higherIsBetter: false,
      },
      {
        metric: '96-step building solve: optimizeSite on the worker, pv-battery, p95',
        unit: 'ms',
        ours: quantile(end96, 0.95),
        ...(withGlpsol
          ? { referenceName: 'glpsol, same LP (p95)', reference: quantile(pvb(96)?.glpsol ?? [], 0.95) }
          : {}),
        higherIsBetter: false,
      },
      {
        metric: '672-step building solve: optimizeSite on the worker, pv-battery, median',
        unit: 'ms',
        ours: median(end672),
        ...glpsolRef,
        ...(withGlpsol ? { reference: glpsol672 } : {}),
        higherIsBetter: false,
      },
    );
    const target = median(end96) < 50 && quantile(end96, 0.95) < 50;
    notes.push(
      `target: a 96-step building solve under 50 ms: ${target ? 'MET' : 'NOT MET'} (median ` +
        `${median(end96).toFixed(2)} ms, p95 ${quantile(end96, 0.95).toFixed(2)} ms, optimizeSite on the worker solver)`,
    );
    rows.push(
      { metric: 'HiGHS WASM load (createInlineSolver)', unit: 'ms', ours: loadMs, higherIsBetter: false },
      {
        metric: 'first solve in the process (cold), pv-battery 96',
        unit: 'ms',
        ours: firstSolveMs,
        referenceName: 'same LP warm (median)',
        reference: median(pvb(96)?.inline ?? []),
        higherIsBetter: false,
      },
      {
        metric: 'worker start + warm-up + first solve, pv-battery 96',
        unit: 'ms',
        ours: workerFirstMs,
        referenceName: 'inline cold first solve',
        reference: firstSolveMs,
        higherIsBetter: false,
      },
    );

    for (const t of timings) {
      const label = `${t.name} ${t.steps} (${t.columns} cols, ${t.rows} rows${t.mip ? ', MIP' : ''})`;
      const g = t.glpsol.length > 0;
      rows.push(
        {
          metric: `${label}: HiGHS inline, median`,
          unit: 'ms',
          ours: median(t.inline),
          ...(g ? { referenceName: 'glpsol (median)', reference: median(t.glpsol) } : {}),
          higherIsBetter: false,
        },
        {
          metric: `${label}: HiGHS inline, p95`,
          unit: 'ms',
          ours: quantile(t.inline, 0.95),
          ...(g ? { referenceName: 'glpsol (p95)', reference: quantile(t.glpsol, 0.95) } : {}),
          higherIsBetter: false,
        },
        {
          metric: `${label}: HiGHS worker round trip, median`,
          unit: 'ms',
          ours: median(t.worker),
          referenceName: 'HiGHS inline (median)',
          reference: median(t.inline),
          higherIsBetter: false,
        },
      );
    }
    const compared = timings.filter((t) => Number.isFinite(t.glpsolObjective));
    if (compared.length > 0) {
      let worst = { rel: 0, name: '' };
      for (const t of compared) {
        const rel = Math.abs(t.highsObjective - t.glpsolObjective) / Math.max(1, Math.abs(t.glpsolObjective));
        if (rel >= worst.rel) worst = { rel, name: `${t.name} ${t.steps}` };
      }
      rows.push({
        metric: `objective agreement HiGHS vs glpsol, max relative difference over ${compared.length} LPs`,
        unit: 'rel',
        ours: worst.rel,
        referenceName: 'test tolerance',
        reference: 1e-6,
        higherIsBetter: false,
      });
      notes.push(`objectives: the largest relative difference (${worst.rel.toExponential(2)}) is ${worst.name}`);
    }

    const curves = await timePriceCurves(first.site, o.curveIntervals, inline);
    rows.push(
      {
        metric: `price-response curves, 9 prices × ${curves.intervals} intervals, warm re-solves (solveVariants)`,
        unit: 'ms',
        ours: curves.warmMs,
        referenceName: `${curves.variants} separate solves`,
        reference: curves.separateMs,
        higherIsBetter: false,
      },
      {
        metric: 'price-response: objective difference warm vs separate, max relative',
        unit: 'rel',
        ours: curves.maxObjectiveRel,
      },
      {
        metric: 'price-response: net traded power difference warm vs separate, inner 7 prices, max',
        unit: 'W',
        ours: curves.maxNetDiffW,
      },
    );
    notes.push(
      'price response: at the two ends of each band (price = feed-in, price = import) trading and the grid cost the ' +
        'same and any split is optimal, so traded power is compared at the 7 inner prices; a nonzero difference ' +
        'with equal objectives is another point of the same optimal face',
    );
    context.highsRepeat96 = o.repeat96;
    context.highsRepeat672 = o.repeat672;
  } finally {
    await worker.close();
    await inline.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Part 2: the simulated week

export interface WeekOptions {
  readonly seed: number;
  /** Simulated days that are scored. */
  readonly days: number;
  /** Days before them that only give the forecasts their history. */
  readonly warmupDays: number;
  /** Re-plan every this many intervals (1: every 15 min). */
  readonly replanEvery: number;
  /** Also run the diagnostic controllers (plan followed, perfect forecasts). Default true. */
  readonly diagnostics?: boolean;
}

/**
 * optimizer: plans on forecasts, executed with the dispatcher's real-time correction (agent/optimizer/dispatch.ts);
 * ruleBased: self-consumption; noBattery; planFollowing: the same plans, the planned battery power as the setpoint;
 * perfectForecast: the optimizer planning on the actual PV and load, plan followed.
 */
export const CONTROLLERS = ['optimizer', 'ruleBased', 'noBattery', 'planFollowing', 'perfectForecast'] as const;
export type ControllerName = (typeof CONTROLLERS)[number];

export interface DayResult {
  /** Local date, YYYY-MM-DD. */
  readonly date: string;
  readonly weekday: string;
  /** The sky's cloudiness that day, 0 clear .. 1 overcast. */
  readonly cloudiness: number;
  readonly pvKWh: number;
  readonly loadKWh: number;
  readonly meanPrice: number;
  /**
   * What a kWh left in the cells at the end of the day is worth: it displaces discharge efficiency × 1 kWh of import
   * at the next day's mean price, less the wear of discharging it. For the stored-energy-adjusted comparison only.
   */
  readonly storedValuePerKWh: number;
  /** Per controller; NaN for a controller that was not run. */
  readonly cost: Readonly<Record<ControllerName, number>>;
  /** Energy through the battery (charged + discharged, AC), kWh. */
  readonly throughputKWh: Readonly<Record<ControllerName, number>>;
  /** Energy in the cells at the start and the end of the day, kWh. */
  readonly storedStartKWh: Readonly<Record<ControllerName, number>>;
  readonly storedEndKWh: Readonly<Record<ControllerName, number>>;
}

export interface WeekResult {
  readonly days: readonly DayResult[];
  readonly controllers: readonly ControllerName[];
  /** Optimizer re-plans (every optimizing controller), and how many came back as a fallback schedule. */
  readonly replans: number;
  readonly fallbacks: number;
  /** Time per re-plan (forecasts, model, optimizeSite), ms. */
  readonly replanMs: readonly number[];
  /** Mean absolute error of the forecasts over each plan's horizon (where actuals exist), W. */
  readonly pvForecastMaeW: number;
  readonly loadForecastMaeW: number;
  /** The same for the first interval of each plan (the one that is executed), W. */
  readonly pvNowcastMaeW: number;
  readonly loadNowcastMaeW: number;
  /** Scored intervals in which the optimizer's real-time correction changed the setpoint, and by how much, kWh. */
  readonly correctedIntervals: number;
  readonly correctionKWh: number;
}

/** A day's cost with the change in stored energy valued (see DayResult.storedValuePerKWh). */
export function adjustedCost(d: DayResult, c: ControllerName): number {
  const delta = c === 'noBattery' ? 0 : d.storedEndKWh[c] - d.storedStartKWh[c];
  return d.cost[c] - delta * d.storedValuePerKWh;
}

const SITE = exampleSite();
const LOCATION: SiteLocation = SITE.location;
const UTC_OFFSET_MIN = LOCATION.utcOffsetMinutes ?? 60;

function deviceParams(kind: 'pv-inverter' | 'building-load'): unknown {
  const d = SITE.devices.find((x) => x.kind === kind);
  if (d === undefined) throw new Error(`bench optimizer: exampleSite (sim/physics/site.ts) has no ${kind} any more`);
  return d.params;
}

const PV_PARAMS = deviceParams('pv-inverter') as PvParams;
const LOAD_PARAMS = deviceParams('building-load') as LoadParams;

/** The battery of the week: the optimizer's model of it (energy filled in at each plan) and the simulator's. */
const BATTERY = caseBattery({ reservePct: 20, socMinPct: 10, socMaxPct: 95, terminal: 'keep' });

/** Actual interval means of PV and load from the simulator's physics, and the sky of each day. */
interface Actuals {
  readonly start: number;
  readonly pvW: Float64Array;
  readonly loadW: Float64Array;
  readonly cloudiness: readonly number[];
}

function simulateActuals(seed: number, start: number, totalDays: number): Actuals {
  const n = totalDays * STEPS_PER_DAY;
  const pvW = new Float64Array(n);
  const loadW = new Float64Array(n);
  const grid = new GridModel({}, { seed: deriveSeed(seed, 'site:grid'), startMs: start });
  const load = new BuildingLoad('office', LOAD_PARAMS, {
    grid,
    startMs: start,
    seed: deriveSeed(seed, 'device:office'),
    utcOffsetMinutes: UTC_OFFSET_MIN,
  });
  const clouds = new Rng(deriveSeed(seed, 'cloudiness'));
  const cloudiness: number[] = [];
  for (let d = 0; d < totalDays; d++) {
    // Clear to heavily clouded; each day its own sky (a SolarResource has one cloudiness), joined at local midnight
    // when the sun is down.
    const c = Math.round(clouds.uniform(0, 0.85) * 100) / 100;
    cloudiness.push(c);
    const dayStart = start + d * DAY_MS;
    const solar = new SolarResource(
      LOCATION,
      { cloudiness: c },
      { seed: deriveSeed(seed, `sky:${d}`), startMs: dayStart },
    );
    const pv = new PvInverter('pv', PV_PARAMS, { grid, solar, startMs: dayStart });
    for (let i = 0; i < STEPS_PER_DAY; i++) {
      const k = d * STEPS_PER_DAY + i;
      const t1 = start + (k + 1) * STEP_MS;
      const pv0 = -pv.netEnergyWh();
      const load0 = load.netEnergyWh();
      pv.step(t1);
      load.step(t1);
      pvW[k] = (-pv.netEnergyWh() - pv0) / DT_H;
      loadW[k] = (load.netEnergyWh() - load0) / DT_H;
    }
  }
  return { start, pvW, loadW, cloudiness };
}

/** The 'measured' history the forecasts learn from: the interval means of the intervals before `to`. */
class ActualsHistory implements HistorySource {
  readonly stepMs = STEP_MS;
  constructor(private readonly actuals: Actuals) {}

  samples(device: string, point: string, from: number, to: number): PowerSample[] {
    const series = device === 'pv' ? this.actuals.pvW : device === 'office' ? this.actuals.loadW : undefined;
    if (series === undefined || point !== 'W') return [];
    const first = Math.max(0, Math.ceil((from - this.actuals.start) / STEP_MS));
    // Only intervals that have ended by `to` (the sim plans at interval boundaries).
    const last = Math.min(series.length, Math.floor((to - this.actuals.start) / STEP_MS));
    const out: PowerSample[] = [];
    for (let k = first; k < last; k++) out.push({ t: this.actuals.start + k * STEP_MS, w: series[k] as number });
    return out;
  }
}

function forecasterFor(actuals: Actuals): Forecaster {
  return createLedgerForecaster({
    history: new ActualsHistory(actuals),
    buildings: {
      // In the agent, consumption = grid meter + PV + battery; the simulated load is that sum.
      office: { terms: [{ device: 'office', point: 'W' }], defaultLoadW: 5_000, utcOffsetMinutes: UTC_OFFSET_MIN },
    },
    plants: {
      pv: {
        device: 'pv',
        point: 'W',
        plant: {
          peakWp: PV_PARAMS.dcCapacityWp,
          acRatingW: PV_PARAMS.acRatingW,
          tiltDeg: PV_PARAMS.tiltDeg ?? 30,
          azimuthDeg: PV_PARAMS.azimuthDeg ?? 180,
          // The simulator's derate × inverter efficiency (defaults 0.9 × 0.96): what a commissioning would measure.
          performanceRatio: (PV_PARAMS.derate ?? 0.9) * (PV_PARAMS.efficiency ?? 0.96),
        },
        location: { latitudeDeg: LOCATION.latitudeDeg, longitudeDeg: LOCATION.longitudeDeg },
      },
    },
  });
}

function newSimBattery(startMs: number, seed: number): SimBattery {
  return new SimBattery(
    'battery',
    {
      capacityWh: BATTERY.capacityWh,
      maxChargeW: BATTERY.maxChargeW,
      maxDischargeW: BATTERY.maxDischargeW,
      socStartPct: 50,
      socMinPct: BATTERY.socMinPct,
      socMaxPct: BATTERY.socMaxPct,
      chargeEfficiency: BATTERY.chargeEfficiency,
      dischargeEfficiency: BATTERY.dischargeEfficiency,
    },
    { grid: new GridModel({}, { seed: deriveSeed(seed, 'battery-grid'), startMs }), startMs },
  );
}

/** The battery power (+ discharge) possible for one interval within the power limits, the BMS maximum and the reserve. */
function clampToBattery(w: number, storedWh: number): number {
  const top = (BATTERY.capacityWh * BATTERY.socMaxPct) / 100;
  const reserve = (BATTERY.capacityWh * BATTERY.reservePct) / 100;
  const maxChargeW = Math.min(BATTERY.maxChargeW, Math.max(0, top - storedWh) / (BATTERY.chargeEfficiency * DT_H));
  const maxDischargeW = Math.min(
    BATTERY.maxDischargeW,
    (Math.max(0, storedWh - reserve) * BATTERY.dischargeEfficiency) / DT_H,
  );
  return Math.min(maxDischargeW, Math.max(-maxChargeW, w));
}

/** Rule-based self-consumption: the battery covers the deficit (load - PV) or takes the surplus, within its limits. */
function selfConsumptionW(deficitW: number, storedWh: number): number {
  return clampToBattery(deficitW, storedWh);
}

/** The prices of every interval of the simulated period plus one day (the last plans look a day ahead). */
function weekPrices(seed: number, start: number, totalDays: number): Float64Array {
  const out = new Float64Array((totalDays + 1) * STEPS_PER_DAY);
  for (let d = 0; d <= totalDays; d++) {
    const h: Horizon = { start: start + d * DAY_MS, stepMs: STEP_MS, steps: STEPS_PER_DAY };
    dynamicPrice(h, new Rng(deriveSeed(seed, `price:${d}`))).forEach((p, i) => {
      out[d * STEPS_PER_DAY + i] = p;
    });
  }
  return out;
}

interface Plan {
  /** Interval index the plan starts at. */
  readonly from: number;
  /** Battery power per interval, W (+ discharge). */
  readonly batteryW: readonly number[];
  /** Planned flow at the connection per interval, W (+ import). */
  readonly netW: readonly number[];
}

const perController = (value: (c: ControllerName) => number): Record<ControllerName, number> =>
  Object.fromEntries(CONTROLLERS.map((c) => [c, value(c)])) as Record<ControllerName, number>;

/** Runs the simulated days (see the header); `solver` plans for the optimizing controllers. */
export async function simulateWeek(options: WeekOptions, solver: Solver): Promise<WeekResult> {
  const { seed, days, warmupDays, replanEvery } = options;
  // exampleSite starts at local midnight on a Monday: 14 warm-up days (the default) score a Monday to Sunday with two
  // weeks of history behind the forecasts; 2 start on a Wednesday with a weekday-only history (a new installation).
  const simStart = Date.parse(SITE.start);
  const totalDays = warmupDays + days;
  // One extra day of actuals for the perfect forecasts of the last plans.
  const actuals = simulateActuals(seed, simStart, totalDays + 1);
  const prices = weekPrices(seed, simStart, totalDays);
  const forecaster = forecasterFor(actuals);
  const first = warmupDays * STEPS_PER_DAY;
  const weekStart = simStart + first * STEP_MS;

  const controllers: ControllerName[] =
    (options.diagnostics ?? true) ? [...CONTROLLERS] : ['optimizer', 'ruleBased', 'noBattery'];
  const batteries = new Map<ControllerName, SimBattery>();
  for (const c of controllers) if (c !== 'noBattery') batteries.set(c, newSimBattery(weekStart, seed));
  const stored = (c: ControllerName) =>
    c === 'noBattery' ? 0 : (batteries.get(c)?.snapshot().storedEnergyWh ?? Number.NaN) / 1000;
  const plans = new Map<ControllerName, Plan>();

  let replans = 0;
  let correctedIntervals = 0;
  let correctionWh = 0;
  let fallbacks = 0;
  const replanMs: number[] = [];
  const mae = { pv: { sum: 0, n: 0 }, load: { sum: 0, n: 0 }, pvNow: { sum: 0, n: 0 }, loadNow: { sum: 0, n: 0 } };
  const addError = (m: { sum: number; n: number }, e: number) => {
    m.sum += e;
    m.n++;
  };

  const plan = async (c: ControllerName, k: number, storedWh: number): Promise<Plan> => {
    const now = simStart + k * STEP_MS;
    const horizon: Horizon = { start: now, stepMs: STEP_MS, steps: STEPS_PER_DAY };
    const t0 = performance.now();
    let loadW: number[];
    let pvW: number[];
    if (c === 'perfectForecast') {
      loadW = Array.from(actuals.loadW.subarray(k, k + STEPS_PER_DAY));
      pvW = Array.from(actuals.pvW.subarray(k, k + STEPS_PER_DAY));
    } else {
      loadW = forecaster.load('office', horizon, now).forecastW;
      pvW = forecaster.pv('pv', horizon, now).forecastW;
      if (c === 'optimizer') {
        for (let i = 0; i < STEPS_PER_DAY && k + i < actuals.pvW.length; i++) {
          const pvError = Math.abs((pvW[i] ?? 0) - (actuals.pvW[k + i] ?? 0));
          const loadError = Math.abs((loadW[i] ?? 0) - (actuals.loadW[k + i] ?? 0));
          addError(mae.pv, pvError);
          addError(mae.load, loadError);
          if (i === 0) {
            addError(mae.pvNow, pvError);
            addError(mae.loadNow, loadError);
          }
        }
      }
    }
    const site: SiteModel = {
      horizon,
      buildings: [
        {
          name: 'office',
          grid: {
            importLimitW: 43_000,
            exportLimitW: 30_000,
            importPrice: Array.from(prices.subarray(k, k + STEPS_PER_DAY)),
            exportPrice: new Array<number>(STEPS_PER_DAY).fill(FEED_IN),
          },
          criticalLoadW: loadW,
          pv: [{ name: 'pv', forecastW: pvW, curtailable: true, ratedW: PV_PARAMS.acRatingW }],
          batteries: [{ ...BATTERY, energyWh: storedWh } satisfies BatteryModel],
          evs: [],
          flexibleLoads: [],
        },
      ],
      trades: [],
      caps: {},
    };
    const schedule = await optimizeSite(site, solver);
    replanMs.push(performance.now() - t0);
    replans++;
    if (schedule.status !== 'optimal') fallbacks++;
    const building = schedule.buildings[0];
    return {
      from: k,
      batteryW: building?.ders.find((d) => d.kind === 'battery')?.powerW ?? [],
      netW: building?.netW ?? [],
    };
  };

  const results: DayResult[] = [];
  for (let d = 0; d < days; d++) {
    const cost = perController((c) => (controllers.includes(c) ? 0 : Number.NaN));
    const throughputWh = perController((c) => (controllers.includes(c) ? 0 : Number.NaN));
    const storedStartKWh = perController(stored);
    let pvWh = 0;
    let loadWh = 0;
    let priceSum = 0;
    for (let i = 0; i < STEPS_PER_DAY; i++) {
      const k = first + d * STEPS_PER_DAY + i;
      const t1 = simStart + (k + 1) * STEP_MS;
      const pv = actuals.pvW[k] as number;
      const load = actuals.loadW[k] as number;
      const price = prices[k] as number;
      pvWh += pv * DT_H;
      loadWh += load * DT_H;
      priceSum += price;
      for (const c of controllers) {
        let chargedWh = 0;
        let dischargedWh = 0;
        const bat = batteries.get(c);
        if (bat !== undefined) {
          const before = bat.snapshot();
          let w: number;
          if (c === 'ruleBased') w = selfConsumptionW(load - pv, before.storedEnergyWh);
          else {
            let p = plans.get(c);
            if (p === undefined || k - p.from >= replanEvery) {
              p = await plan(c, k, before.storedEnergyWh);
              plans.set(c, p);
            }
            const j = k - p.from;
            const planned = p.batteryW[j] ?? 0;
            w = planned;
            if (c === 'optimizer') {
              const plannedNetW = p.netW[j] ?? 0;
              // The meter's reading with the battery at its setpoint is load - PV - setpoint, so the deviation
              // (meter + battery - planned battery - planned net) is load - PV - planned battery - planned net.
              const correction = batteryCorrectionW({
                plannedNetW,
                deviationW: load - pv - planned - plannedNetW,
                plannedBatteryW: planned,
                baseW: planned,
                deadbandW: DEADBAND_W,
              });
              if (correction !== 0) {
                w = clampToBattery(planned + correction, before.storedEnergyWh);
                correctedIntervals++;
                correctionWh += Math.abs(w - planned) * DT_H;
              }
            }
          }
          bat.setPower({ w });
          bat.step(t1);
          const after = bat.snapshot();
          chargedWh = after.chargedEnergyWh - before.chargedEnergyWh;
          dischargedWh = after.dischargedEnergyWh - before.dischargedEnergyWh;
        }
        const netWh = (load - pv) * DT_H + chargedWh - dischargedWh;
        cost[c] +=
          (Math.max(0, netWh) * price - Math.max(0, -netWh) * FEED_IN) / 1000 +
          ((chargedWh + dischargedWh) / 1000) * (BATTERY.degradationCostPerKWh / 2);
        throughputWh[c] += chargedWh + dischargedWh;
      }
    }
    const dayStart = weekStart + d * DAY_MS;
    const local = new Date(dayStart + UTC_OFFSET_MIN * 60_000);
    const next = prices.subarray((warmupDays + d + 1) * STEPS_PER_DAY, (warmupDays + d + 2) * STEPS_PER_DAY);
    const nextMean = next.reduce((s, p) => s + p, 0) / next.length;
    results.push({
      date: local.toISOString().slice(0, 10),
      weekday: local.toLocaleDateString('en-US', { weekday: 'short', timeZone: 'UTC' }),
      cloudiness: actuals.cloudiness[warmupDays + d] ?? Number.NaN,
      pvKWh: pvWh / 1000,
      loadKWh: loadWh / 1000,
      meanPrice: priceSum / STEPS_PER_DAY,
      storedValuePerKWh: BATTERY.dischargeEfficiency * nextMean - BATTERY.degradationCostPerKWh / 2,
      cost,
      throughputKWh: perController((c) => throughputWh[c] / 1000),
      storedStartKWh,
      storedEndKWh: perController(stored),
    });
  }
  const meanOf = (m: { sum: number; n: number }) => (m.n > 0 ? m.sum / m.n : Number.NaN);
  return {
    days: results,
    controllers,
    replans,
    fallbacks,
    replanMs,
    pvForecastMaeW: meanOf(mae.pv),
    loadForecastMaeW: meanOf(mae.load),
    pvNowcastMaeW: meanOf(mae.pvNow),
    loadNowcastMaeW: meanOf(mae.loadNow),
    correctedIntervals,
    correctionKWh: correctionWh / 1000,
  };
}

const LABEL: Record<ControllerName, string> = {
  optimizer: 'optimizer',
  ruleBased: 'rule-based',
  noBattery: 'no battery',
  perfectForecast: 'optimizer on perfect forecasts, plan followed',
  planFollowing: 'optimizer, plan followed (no correction)',
};

async function weekRows(o: Options, rows: BenchRow[], notes: string[], context: Record<string, string | number>) {
  const solver = await createInlineSolver();
  let week: WeekResult;
  try {
    week = await simulateWeek(
      { seed: o.seed, days: o.days, warmupDays: o.warmupDays, replanEvery: o.replanEvery },
      solver,
    );
  } finally {
    await solver.close();
  }
  const n = week.days.length;
  const costOf = (d: DayResult, c: ControllerName, valued: boolean) => (valued ? adjustedCost(d, c) : d.cost[c]);
  const sum = (c: ControllerName, valued = false) => week.days.reduce((s, d) => s + costOf(d, c, valued), 0);
  const wins = (c: ControllerName, valued = false) =>
    week.days.filter((d) => costOf(d, c, valued) < costOf(d, 'ruleBased', valued)).length;
  const VALUED = 'stored-energy change valued';
  for (const [i, d] of week.days.entries()) {
    const day = `day ${i + 1} ${d.date} ${d.weekday}`;
    rows.push(
      {
        metric:
          `${day} (clouds ${d.cloudiness.toFixed(2)}, PV ${d.pvKWh.toFixed(1)} kWh, load ${d.loadKWh.toFixed(0)} ` +
          `kWh, mean price ${d.meanPrice.toFixed(3)}): optimizer cost, raw`,
        unit: 'currency',
        ours: d.cost.optimizer,
        referenceName: 'rule-based, raw',
        reference: d.cost.ruleBased,
        higherIsBetter: false,
      },
      {
        metric: `${day}: optimizer cost, ${VALUED} (a kWh at ${d.storedValuePerKWh.toFixed(3)})`,
        unit: 'currency',
        ours: adjustedCost(d, 'optimizer'),
        referenceName: `rule-based, ${VALUED}`,
        reference: adjustedCost(d, 'ruleBased'),
        higherIsBetter: false,
      },
    );
  }
  const first = week.days[0];
  const last = week.days[n - 1];
  rows.push(
    {
      metric: `days the optimizer cost less than rule-based, raw`,
      unit: 'days',
      ours: wins('optimizer'),
      referenceName: 'days simulated',
      reference: n,
      higherIsBetter: true,
    },
    {
      metric: `days the optimizer cost less than rule-based, ${VALUED}`,
      unit: 'days',
      ours: wins('optimizer', true),
      referenceName: 'days simulated',
      reference: n,
      higherIsBetter: true,
    },
    {
      metric: `${n}-day total cost: optimizer, raw`,
      unit: 'currency',
      ours: sum('optimizer'),
      referenceName: 'rule-based, raw',
      reference: sum('ruleBased'),
      higherIsBetter: false,
    },
    {
      metric: `${n}-day total cost: optimizer, ${VALUED}`,
      unit: 'currency',
      ours: sum('optimizer', true),
      referenceName: `rule-based, ${VALUED}`,
      reference: sum('ruleBased', true),
      higherIsBetter: false,
    },
    {
      metric: `${n}-day total cost: optimizer, raw`,
      unit: 'currency',
      ours: sum('optimizer'),
      referenceName: 'no battery',
      reference: sum('noBattery'),
      higherIsBetter: false,
    },
    {
      metric: `${n}-day savings against no battery: optimizer, raw`,
      unit: 'currency',
      ours: sum('noBattery') - sum('optimizer'),
      referenceName: 'rule-based savings, raw',
      reference: sum('noBattery') - sum('ruleBased'),
      higherIsBetter: true,
    },
    {
      metric: `${n}-day savings against no battery: optimizer, ${VALUED}`,
      unit: 'currency',
      ours: sum('noBattery') - sum('optimizer', true),
      referenceName: `rule-based savings, ${VALUED}`,
      reference: sum('noBattery') - sum('ruleBased', true),
      higherIsBetter: true,
    },
    {
      metric: `stored energy after day ${n} (start ${(first?.storedStartKWh.optimizer ?? 0).toFixed(2)} kWh): optimizer`,
      unit: 'kWh',
      ours: last?.storedEndKWh.optimizer ?? Number.NaN,
      referenceName: 'rule-based',
      reference: last?.storedEndKWh.ruleBased ?? Number.NaN,
      higherIsBetter: true,
    },
    {
      metric: `battery throughput over ${n} days: optimizer`,
      unit: 'kWh',
      ours: week.days.reduce((s, d) => s + d.throughputKWh.optimizer, 0),
      referenceName: 'rule-based',
      reference: week.days.reduce((s, d) => s + d.throughputKWh.ruleBased, 0),
    },
    {
      metric: `real-time correction: intervals in which it changed the optimizer's setpoint`,
      unit: 'intervals',
      ours: week.correctedIntervals,
      referenceName: 'intervals simulated',
      reference: n * STEPS_PER_DAY,
    },
    {
      metric: `real-time correction: energy it moved into or out of the plan's battery power`,
      unit: 'kWh',
      ours: week.correctionKWh,
    },
    {
      metric: 'forecast error over the plan horizon, PV (MAE)',
      unit: 'W',
      ours: week.pvForecastMaeW,
      referenceName: 'first interval of the plan',
      reference: week.pvNowcastMaeW,
    },
    {
      metric: 'forecast error over the plan horizon, load (MAE)',
      unit: 'W',
      ours: week.loadForecastMaeW,
      referenceName: 'first interval of the plan',
      reference: week.loadNowcastMaeW,
    },
    {
      metric: `re-plan (forecasts + model + optimizeSite inline), median of ${week.replans}`,
      unit: 'ms',
      ours: median(week.replanMs),
      higherIsBetter: false,
    },
  );
  // Diagnosis: what the correction adds to the plan, and what is left to the forecasts.
  for (const c of ['planFollowing', 'perfectForecast'] as const) {
    if (!week.controllers.includes(c)) continue;
    for (const valued of [false, true]) {
      const how = valued ? VALUED : 'raw';
      rows.push(
        {
          metric: `diagnosis: days cheaper than rule-based, ${how}: ${LABEL[c]}`,
          unit: 'days',
          ours: wins(c, valued),
          referenceName: 'days simulated',
          reference: n,
          higherIsBetter: true,
        },
        {
          metric: `diagnosis: ${n}-day savings against no battery, ${how}: ${LABEL[c]}`,
          unit: 'currency',
          ours: sum('noBattery') - sum(c, valued),
          referenceName: `optimizer (corrected), ${how}`,
          reference: sum('noBattery') - sum('optimizer', valued),
          higherIsBetter: true,
        },
      );
    }
  }
  const raw = wins('optimizer');
  const valued = wins('optimizer', true);
  const lost = (v: boolean) =>
    week.days
      .filter((d) => !(costOf(d, 'optimizer', v) < costOf(d, 'ruleBased', v)))
      .map((d) => `${d.date} ${d.weekday} by ${(costOf(d, 'optimizer', v) - costOf(d, 'ruleBased', v)).toFixed(2)}`);
  notes.push(
    `target: a lower cost than rule-based on every simulated day with a time-varying price: raw ` +
      `${raw === n ? 'MET' : 'NOT MET'} (${raw}/${n}${raw < n ? `; lost ${lost(false).join(', ')}` : ''}); ` +
      `${VALUED} ${valued === n ? 'MET' : 'NOT MET'} (${valued}/${n}${valued < n ? `; lost ${lost(true).join(', ')}` : ''})`,
  );
  notes.push(
    `raw: each day's own import, export and wear. ${VALUED}: raw - (energy in the cells at the day's end - at its ` +
      "start) × (0.96 × the next day's mean import price - 0.015 wear), the same for every controller; it puts the " +
      'cost of energy bought before midnight for the next morning on the day that uses it',
  );
  for (const [i, d] of week.days.entries()) {
    const parts = week.controllers.map(
      (c) =>
        `${LABEL[c]} ${d.cost[c].toFixed(2)} (valued ${adjustedCost(d, c).toFixed(2)}` +
        (c === 'noBattery'
          ? ')'
          : `, stored ${d.storedStartKWh[c].toFixed(2)}->${d.storedEndKWh[c].toFixed(2)} kWh, ` +
            `through ${d.throughputKWh[c].toFixed(1)} kWh)`),
    );
    notes.push(
      `day ${i + 1} ${d.date} ${d.weekday} (a stored kWh valued ${d.storedValuePerKWh.toFixed(3)}): ${parts.join('; ')}`,
    );
  }
  if (week.fallbacks > 0) notes.push(`${week.fallbacks} of ${week.replans} plans came back as fallback schedules`);
  notes.push(
    `week: exampleSite's office near Munich (UTC+${UTC_OFFSET_MIN / 60}), ${o.warmupDays} warm-up day(s) of history ` +
      `from ${SITE.start}, then ${n} scored days; battery 10 kWh / 5 kW, 96 % each way, BMS 10-95 %, reserve 20 %, ` +
      `wear ${BATTERY.degradationCostPerKWh} per kWh through (every controller); feed-in ${FEED_IN} flat; ` +
      `re-plan every ${o.replanEvery} interval(s), 24 h horizon, terminal energy 'keep'; the optimizer's plans ` +
      `executed with the dispatcher's real-time correction (deadband ${DEADBAND_W} W, on interval means); each ` +
      "controller drives its own copy of the simulator's Battery model (sim/physics/battery.ts), stepped standalone",
  );
  context.seed = o.seed;
  context.days = n;
  context.warmupDays = o.warmupDays;
}

// ---------------------------------------------------------------------------------------------------------------

export async function run(args: readonly string[]): Promise<BenchReport> {
  const o = parseOptions(args);
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const context: Record<string, string | number> = { quick: o.quick ? 'yes' : 'no' };
  if (o.only !== 'week') await solveTimes(o, rows, notes, context);
  if (o.only !== 'solve') await weekRows(o, rows, notes, context);
  return { name: 'optimizer', rows, notes, context };
}
