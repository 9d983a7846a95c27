/**
 * npm run bench -- grid [--buses N] [--seed S] [--repeat R]
 *
 * The DSO's feeder computations, one core:
 *
 * 1. Power flow on the IEEE 33-bus feeder: our backward/forward sweep against a plain dense Newton-Raphson power flow
 *    (bench/grid-newton.ts) on the same loads in the same run; time per solve, iterations, and how far apart the two
 *    solutions are (largest voltage difference; losses against the published 202.67 kW).
 * 2. The same on a synthetic radial feeder of N buses (default 1,000): a seeded random tree of long branches and
 *    laterals, loads scaled so the lowest voltage is about 0.93 pu.
 * 3. Sensitivities of the 33-bus feeder (every bus, P and Q): ours (the linearized sweep) against central finite
 *    differences of the full power flow, with the largest difference between them.
 * 4. Reconfiguration of the 33-bus feeder by branch exchange, losses alone: the losses reached against the
 *    literature's optimum (139.55 kW).
 * 5. The DSO's network check on scenarios built to break limits (solar exports at feeder ends above 1.05 pu, an
 *    import overloading a lateral): the 33-bus feeder at half load with 8 MGMCs, and the synthetic feeder with 20.
 *    LP iterations until the caps are secure, the time of one caps LP (HiGHS, in this thread) and of the whole check,
 *    and the curtailment, against the naive DSO that scales every position by one factor (bisection on the full
 *    power flow); then the DSO rounds until secure when the MGMCs re-trade exactly to their caps (the market's own
 *    loop count comes with issue 6).
 */
import { applyCaps, checkNetwork, loadsWithPositions, type ReportedPosition } from '../agent/dso/network-check.js';
import { createFeeder, type Feeder, type FeederSpec, type LineSpec } from '../agent/grid/feeder.js';
import { IEEE33_PUBLISHED, ieee33 } from '../agent/grid/ieee33.js';
import { checkLimits } from '../agent/grid/limits.js';
import { type BusPowers, busLoads, type PowerFlowResult, powerFlow } from '../agent/grid/powerflow.js';
import { reconfigure } from '../agent/grid/reconfigure.js';
import { sensitivities } from '../agent/grid/sensitivity.js';
import { createInlineSolver, type Solver } from '../agent/optimizer/solver.js';
import { mulberry32 } from '../sim/random.js';
import { newtonRaphson } from './grid-newton.js';
import type { BenchReport, BenchRow } from './report.js';

function option(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  if (i === -1) return fallback;
  const n = Number(args[i + 1]);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

/**
 * A seeded random radial feeder of `buses` buses at 12.66 kV: mostly long branches (a bus hangs off one of the last
 * few buses) with laterals off random earlier buses, one open tie switch per 100 buses, loads 5-60 kW at power
 * factors 0.85-0.98, then all loads scaled so the lowest voltage is about `minVoltagePu`.
 */
export function syntheticFeeder(
  buses: number,
  seed: number,
  minVoltagePu = 0.93,
): { feeder: Feeder; loads: BusPowers } {
  const random = mulberry32(seed);
  const spec: { buses: FeederSpec['buses'][number][]; lines: LineSpec[] } = { buses: [], lines: [] };
  spec.buses.push({ name: 'b0', pKw: 0, qKvar: 0 });
  for (let i = 1; i < buses; i++) {
    const parent = random() < 0.85 ? i - 1 - Math.floor(random() * Math.min(i, 3)) : Math.floor(random() * i);
    const pKw = 5 + random() * 55;
    const pf = 0.85 + random() * 0.13;
    spec.buses.push({ name: `b${i}`, pKw, qKvar: pKw * Math.tan(Math.acos(pf)) });
    const rOhm = 0.05 + random() * 0.3;
    spec.lines.push({
      name: `l${i}`,
      from: `b${parent}`,
      to: `b${i}`,
      rOhm,
      xOhm: rOhm * (0.5 + random() * 0.7),
      ampacityA: 400,
    });
  }
  for (let t = 0; t < Math.floor(buses / 100); t++) {
    const a = 1 + Math.floor(random() * (buses - 1));
    let b = 1 + Math.floor(random() * (buses - 1));
    if (b === a) b = a === 1 ? 2 : a - 1;
    spec.lines.push({
      name: `t${t}`,
      from: `b${a}`,
      to: `b${b}`,
      rOhm: 0.5,
      xOhm: 0.5,
      ampacityA: 400,
      status: 'open',
    });
  }
  const feeder = createFeeder({ name: `synthetic-${buses}`, baseKv: 12.66, baseMva: 10, ...spec });
  // Bisection on a load scale: heavy enough to matter, well short of voltage collapse.
  let low = 0;
  let high = 4;
  for (let step = 0; step < 40; step++) {
    const mid = (low + high) / 2;
    const result = powerFlow(feeder, busLoads(feeder, { scale: mid }));
    if (result.converged && result.minVoltage.pu >= minVoltagePu) low = mid;
    else high = mid;
  }
  return { feeder, loads: busLoads(feeder, { scale: low }) };
}

/** Seconds per call over `runs` calls, after one warm-up call (left out for single slow calls, where it is noise). */
function timePerRun<T>(runs: number, fn: () => T): { value: T; seconds: number } {
  if (runs === 1) {
    const start = performance.now();
    const value = fn();
    return { value, seconds: (performance.now() - start) / 1000 };
  }
  let value = fn();
  const start = performance.now();
  for (let i = 0; i < runs; i++) value = fn();
  return { value, seconds: (performance.now() - start) / 1000 / runs };
}

function maxVoltageDifference(result: PowerFlowResult, vPu: Float64Array, angleRad: Float64Array): number {
  let worst = 0;
  for (const [i, bus] of result.buses.entries()) {
    const a = (bus.angleDeg * Math.PI) / 180;
    const dr = bus.vPu * Math.cos(a) - (vPu[i] as number) * Math.cos(angleRad[i] as number);
    const di = bus.vPu * Math.sin(a) - (vPu[i] as number) * Math.sin(angleRad[i] as number);
    worst = Math.max(worst, Math.hypot(dr, di));
  }
  return worst;
}

function comparePowerFlows(
  label: string,
  feeder: Feeder,
  loads: BusPowers,
  runs: { sweep: number; newton: number },
  rows: BenchRow[],
  notes: string[],
): void {
  const sweep = timePerRun(runs.sweep, () => powerFlow(feeder, loads, { tolerancePu: 1e-10 }));
  const newton = timePerRun(runs.newton, () => newtonRaphson(feeder, loads, { tolerancePu: 1e-10 }));
  if (!sweep.value.converged || !newton.value.converged) {
    throw new Error(`${label}: sweep ${sweep.value.status}, Newton-Raphson converged=${newton.value.converged}`);
  }
  const reference = 'dense Newton-Raphson';
  rows.push(
    {
      metric: `${label} power flow`,
      unit: 'ms',
      ours: sweep.seconds * 1000,
      referenceName: reference,
      reference: newton.seconds * 1000,
      higherIsBetter: false,
    },
    {
      metric: `${label} iterations`,
      unit: 'sweeps / NR steps',
      ours: sweep.value.iterations,
      referenceName: reference,
      reference: newton.value.iterations,
      higherIsBetter: false,
    },
    {
      metric: `${label} losses`,
      unit: 'kW',
      ours: sweep.value.lossKw,
      referenceName: reference,
      reference: newton.value.lossKw,
    },
  );
  const dv = maxVoltageDifference(sweep.value, newton.value.vPu, newton.value.angleRad);
  rows.push(
    // The ratio column rounds to 3 decimals; the speed-up as a figure of its own stays readable.
    { metric: `${label} speed-up (NR time / sweep time)`, unit: 'x', ours: newton.seconds / sweep.seconds },
    { metric: `${label} max |V sweep - V NR|`, unit: 'pu', ours: dv },
  );
  notes.push(
    `${label}: ${feeder.buses.length} buses, load ${sweep.value.loadKw.toFixed(0)} kW, losses ` +
      `${sweep.value.lossKw.toFixed(3)} kW (NR ${newton.value.lossKw.toFixed(3)}), min voltage ` +
      `${sweep.value.minVoltage.pu.toFixed(5)} pu at bus ${sweep.value.minVoltage.bus}; timed over ` +
      `${runs.sweep} sweeps and ${runs.newton} Newton-Raphson solve(s)`,
  );
}

/** MGMCs on the 33-bus feeder at half load: exports at the ends of the main feeder and of the 33 branch, imports on
 * the 25 lateral and near the substation. Breaks the voltage band and line s24's ampacity. */
function ieee33Scenario(): ReportedPosition[] {
  return [
    { mgmc: 'pv-18', bus: '18', netW: -1_500_000 },
    { mgmc: 'pv-17', bus: '17', netW: -500_000 },
    { mgmc: 'pv-33', bus: '33', netW: -1_800_000 },
    { mgmc: 'pv-32', bus: '32', netW: -300_000 },
    { mgmc: 'factory-25', bus: '25', netW: 2_000_000 },
    { mgmc: 'mall-24', bus: '24', netW: 300_000 },
    { mgmc: 'home-7', bus: '7', netW: 50_000 },
    { mgmc: 'home-3', bus: '3', netW: 80_000 },
  ];
}

/** `count` MGMCs at seeded random buses of the far half of a synthetic feeder, mostly exporting 0.2-0.8 MW. */
function syntheticScenario(feeder: Feeder, seed: number, count: number): ReportedPosition[] {
  const random = mulberry32(seed * 7 + 1);
  const n = feeder.buses.length;
  const positions: ReportedPosition[] = [];
  const used = new Set<string>();
  while (positions.length < count) {
    const bus = feeder.buses[Math.floor(n / 2 + random() * (n / 2 - 1))]?.name as string;
    if (used.has(bus)) continue;
    used.add(bus);
    const sign = random() < 0.75 ? -1 : 1;
    positions.push({ mgmc: `mg${positions.length}`, bus, netW: Math.round(sign * (200_000 + random() * 600_000)) });
  }
  return positions;
}

function secureAt(feeder: Feeder, base: BusPowers, positions: readonly ReportedPosition[], w: number[]): boolean {
  return checkLimits(feeder, powerFlow(feeder, loadsWithPositions(feeder, base, positions, w))).ok;
}

/** The naive DSO: one factor for every position, the largest that is secure (bisection to 1e-4). */
function uniformCurtailment(feeder: Feeder, base: BusPowers, positions: readonly ReportedPosition[]): number {
  let low = 0;
  let high = 1;
  while (high - low > 1e-4) {
    const mid = (low + high) / 2;
    if (
      secureAt(
        feeder,
        base,
        positions,
        positions.map((p) => p.netW * mid),
      )
    )
      low = mid;
    else high = mid;
  }
  return positions.reduce((sum, p) => sum + Math.abs(p.netW), 0) * (1 - low);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function capsBench(
  label: string,
  feeder: Feeder,
  base: BusPowers,
  positions: readonly ReportedPosition[],
  solver: Solver,
  runs: number,
  rows: BenchRow[],
  notes: string[],
): Promise<void> {
  await checkNetwork(feeder, positions, solver, { base }); // warm: the first HiGHS solve of a process is slow
  let check = await checkNetwork(feeder, positions, solver, { base });
  // Medians: a garbage-collector pause inside one solve would otherwise dominate a mean of a few milliseconds.
  const checkTimes: number[] = [];
  const lpTimes: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    check = await checkNetwork(feeder, positions, solver, { base });
    checkTimes.push(performance.now() - start);
    lpTimes.push(check.lpMs / Math.max(1, check.iterations));
  }
  const checkMs = median(checkTimes);
  if (!check.secure) throw new Error(`${label}: the caps scenario ended ${check.status}: ${check.reason}`);
  const uniformStart = performance.now();
  const uniform = uniformCurtailment(feeder, base, positions);
  const uniformMs = performance.now() - uniformStart;
  // The DSO loop with MGMCs that re-trade exactly to their caps: report, check, cap, report again.
  let reported = positions.map((p) => ({ ...p }));
  let rounds = 0;
  for (;;) {
    rounds++;
    const round = await checkNetwork(feeder, reported, solver, { base });
    if (round.caps.length === 0 || rounds >= 10) break;
    reported = reported.map((p) => {
      const cap = round.caps.find((c) => c.mgmc === p.mgmc);
      return cap === undefined ? p : { ...p, netW: applyCaps(p.netW, cap) };
    });
  }
  const lp = check.lp;
  rows.push(
    { metric: `${label} caps: LP iterations until secure`, unit: 'LPs', ours: check.iterations },
    { metric: `${label} caps: full power flows`, unit: 'count', ours: check.powerFlows },
    {
      metric: `${label} caps LP (${lp?.columns ?? 0} columns, ${lp?.rows ?? 0} rows)`,
      unit: 'ms per solve, median',
      ours: median(lpTimes),
      higherIsBetter: false,
    },
    {
      metric: `${label} network check, whole`,
      unit: 'ms, median',
      ours: checkMs,
      referenceName: 'uniform scaling, bisection',
      reference: uniformMs,
      higherIsBetter: false,
    },
    {
      metric: `${label} curtailment`,
      unit: 'kW',
      ours: check.curtailedW / 1000,
      referenceName: 'uniform scaling, bisection',
      reference: uniform / 1000,
      higherIsBetter: false,
    },
    { metric: `${label} DSO rounds until secure (MGMCs keep to caps)`, unit: 'rounds', ours: rounds },
  );
  notes.push(
    `${label} caps: ${positions.length} MGMCs, ${check.before.violations.length} violations before ` +
      `(${check.before.violations
        .slice(0, 2)
        .map((v) => v.message)
        .join('; ')}), none after; ${check.caps.length} MGMC(s) capped ` +
      `(${check.caps.map((c) => `${c.mgmc} ${(c.curtailedW / 1000).toFixed(1)} kW`).join(', ')}); check timed over ` +
      `${runs} runs`,
  );
}

export async function run(args: readonly string[]): Promise<BenchReport> {
  const buses = option(args, '--buses', 1000);
  const seed = option(args, '--seed', 33);
  const repeat = option(args, '--repeat', 2000);
  const rows: BenchRow[] = [];
  const notes: string[] = [];

  const ieee = createFeeder(ieee33());
  const ieeeLoads = busLoads(ieee);
  comparePowerFlows(
    'ieee33',
    ieee,
    ieeeLoads,
    { sweep: repeat, newton: Math.max(1, Math.floor(repeat / 10)) },
    rows,
    notes,
  );
  const base = powerFlow(ieee, ieeeLoads);
  rows.push({
    metric: 'ieee33 losses vs published',
    unit: 'kW',
    ours: base.lossKw,
    referenceName: 'Baran & Wu 1989',
    reference: IEEE33_PUBLISHED.lossKw,
  });
  rows.push({
    metric: 'ieee33 min voltage (bus 18) vs published',
    unit: 'pu',
    ours: base.minVoltage.pu,
    referenceName: 'Baran & Wu 1989',
    reference: IEEE33_PUBLISHED.minVoltagePu,
  });
  notes.push(
    `ieee33 base case: losses ${base.lossKw.toFixed(3)} kW (published ${IEEE33_PUBLISHED.lossKw}), min voltage ` +
      `${base.minVoltage.pu.toFixed(5)} pu at bus ${base.minVoltage.bus} (published ${IEEE33_PUBLISHED.minVoltagePu} ` +
      `at bus ${IEEE33_PUBLISHED.minVoltageBus})`,
  );

  const built = performance.now();
  const synthetic = syntheticFeeder(buses, seed);
  notes.push(`synthetic feeder built and its load scaled in ${((performance.now() - built) / 1000).toFixed(2)} s`);
  comparePowerFlows(`synthetic ${buses}`, synthetic.feeder, synthetic.loads, { sweep: 50, newton: 1 }, rows, notes);

  // Sensitivities: the linearized sweep against central differences of the full power flow (2 per column and kind).
  const analytic = timePerRun(20, () => sensitivities(ieee, base));
  const stepKw = 1;
  const finite = timePerRun(2, () => {
    const out = { dVdP: new Float64Array(33 * 33), dVdQ: new Float64Array(33 * 33) };
    for (let k = 0; k < 33; k++) {
      for (const kind of ['p', 'q'] as const) {
        const solve = (delta: number) => {
          const loads = busLoads(ieee);
          const column = kind === 'p' ? loads.pKw : loads.qKvar;
          column[k] = (column[k] as number) + delta;
          return powerFlow(ieee, loads, { tolerancePu: 1e-13, maxIterations: 200 });
        };
        const up = solve(stepKw);
        const down = solve(-stepKw);
        for (let i = 0; i < 33; i++) {
          const d = ((up.buses[i]?.vPu as number) - (down.buses[i]?.vPu as number)) / (2 * stepKw);
          (kind === 'p' ? out.dVdP : out.dVdQ)[i * 33 + k] = d;
        }
      }
    }
    return out;
  });
  let worst = 0;
  let largest = 0;
  for (let i = 0; i < 33 * 33; i++) {
    largest = Math.max(largest, Math.abs(finite.value.dVdP[i] as number));
    worst = Math.max(
      worst,
      Math.abs((analytic.value.dVdP.data[i] as number) - (finite.value.dVdP[i] as number)),
      Math.abs((analytic.value.dVdQ.data[i] as number) - (finite.value.dVdQ[i] as number)),
    );
  }
  rows.push(
    {
      metric: 'ieee33 sensitivities, 33 buses x P,Q',
      unit: 'ms',
      ours: analytic.seconds * 1000,
      referenceName: 'finite differences (132 power flows)',
      reference: finite.seconds * 1000,
      higherIsBetter: false,
    },
    { metric: 'ieee33 max |dV/dP ours - finite diff| / max |dV/dP|', unit: 'ratio', ours: worst / largest },
  );

  const configured = timePerRun(3, () => reconfigure(ieee, { violationPenaltyKw: 0 }));
  rows.push(
    {
      metric: 'ieee33 reconfiguration (losses alone)',
      unit: 'kW',
      ours: configured.value.after.lossKw,
      referenceName: 'literature optimum',
      reference: IEEE33_PUBLISHED.bestLossKw,
      higherIsBetter: false,
    },
    { metric: 'ieee33 reconfiguration time', unit: 'ms', ours: configured.seconds * 1000, higherIsBetter: false },
    { metric: 'ieee33 reconfiguration power flows', unit: 'count', ours: configured.value.powerFlows },
  );
  const withPenalty = reconfigure(ieee);
  notes.push(
    `reconfiguration, losses alone: ${configured.value.after.lossKw.toFixed(2)} kW, opens ` +
      `${configured.value.after.openSwitches.join(', ')} ` +
      `(literature: ${IEEE33_PUBLISHED.bestOpenSwitches.join(', ')}), min voltage ` +
      `${configured.value.after.minVoltage.pu.toFixed(4)} pu; with the default violation penalty: opens ` +
      `${withPenalty.after.openSwitches.join(', ')}, ${withPenalty.after.lossKw.toFixed(2)} kW, min voltage ` +
      `${withPenalty.after.minVoltage.pu.toFixed(4)} pu`,
  );

  const solver = await createInlineSolver();
  try {
    await capsBench('ieee33', ieee, busLoads(ieee, { scale: 0.5 }), ieee33Scenario(), solver, 20, rows, notes);
    const lightly = syntheticFeeder(buses, seed, 0.97);
    const scenario = syntheticScenario(lightly.feeder, seed, 20);
    await capsBench(`synthetic ${buses}`, lightly.feeder, lightly.loads, scenario, solver, 5, rows, notes);
  } finally {
    await solver.close();
  }

  return {
    name: 'grid',
    rows,
    notes,
    context: { node: process.version, buses, seed, repeat },
  };
}
