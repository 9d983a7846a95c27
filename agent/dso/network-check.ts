/**
 * The DSO's network security check for one market interval (stage 2 of DESIGN.md section 2): the feeder is solved
 * with every MGMC's reported net position added at its bus, and when a voltage or a line limit is broken the DSO
 * computes caps on the MGMCs' net positions that make the interval secure while curtailing as little trade as
 * possible.
 *
 * The caps come from an LP over the power flow linearized at the operating point (the exact sensitivities of
 * agent/grid/sensitivity.ts), solved with HiGHS:
 *
 *   minimize   Σ_j w_j·c_j                       c_j ≥ 0: kW cut from MGMC j's position, at most |p_j|
 *   subject to V_min + m_i ≤ V_i + Σ_j dV_i/dP_j·Δ_j ≤ V_max - m_i     for every bus that could reach its band
 *              I_l + Σ_j dI_l/dP_j·Δ_j ≤ I_max,l·(1 - m_l)             for every line that could reach its ampacity
 *
 * with Δ_j the change of MGMC j's consumption from the operating point. A cap only ever moves a position toward 0
 * (less import for an importer, less export for an exporter): the DSO curtails trades, it never orders an MGMC to
 * trade more, so each MGMC needs one non-negative column and |change| is that column itself. Every limit row is
 * elastic (a slack column at a cost far above any curtailment), so the LP always has a solution: a positive slack
 * means no caps can meet that limit (the base load alone breaks it), which is reported rather than hidden.
 *
 * The linear model is only close to the power flow, so the capped positions are checked with the full power flow;
 * a limit still broken gets a margin as large as its remaining excess, and the LP is solved again at the new
 * operating point. A secure answer is linearized at once more (a sequential LP): from a point near the binding limits
 * the model is accurate, so this removes what the first, distant linearization over-curtailed. It stops when a step
 * no longer lowers the curtailment by more than 0.2 %, or at the iteration cap: the least curtailing secure caps
 * found are the answer, or, with none, the interval is reported not secure with the last caps.
 */
import { type Feeder, FeederError, type FeederProblem } from '../grid/feeder.js';
import { checkLimits, type LimitReport } from '../grid/limits.js';
import { type BusPowers, busLoads, type PowerFlowOptions, type PowerFlowResult, powerFlow } from '../grid/powerflow.js';
import { sensitivities } from '../grid/sensitivity.js';
import { LpBuilder } from '../optimizer/lp.js';
import type { Solver } from '../optimizer/solver.js';

/** One MGMC's reported net position for the interval. */
export interface ReportedPosition {
  /** Who: the MGMC's address at the DSO (a name in files). */
  readonly mgmc: string;
  /** Its feeder bus (the DSO registry's bus). */
  readonly bus: string;
  /** Net import, W (negative: export). */
  readonly netW: number;
  /** Cost of curtailing one kW of this MGMC relative to the others; default 1 (all alike). */
  readonly weight?: number;
}

/** Caps for one MGMC (only for MGMCs the check curtails). Import caps for importers, export caps for exporters. */
export interface PositionCap {
  readonly mgmc: string;
  readonly bus: string;
  /** The reported position, W. */
  readonly positionW: number;
  /** Largest net import allowed, W (set for an MGMC that reported an import). */
  readonly maxImportW?: number;
  /** Largest net export allowed, W, as a positive number (set for an MGMC that reported an export). */
  readonly maxExportW?: number;
  /** How much of the position the cap takes away, W. */
  readonly curtailedW: number;
}

/**
 * secure: no limit broken at the reported positions (no caps); secured: the caps make the interval secure;
 * not-secure: no caps found that do (see `reason`); the caps are the best found and the DSO sends them anyway.
 */
export type NetworkStatus = 'secure' | 'secured' | 'not-secure';

export interface NetworkCheck {
  readonly interval?: number;
  readonly status: NetworkStatus;
  readonly secure: boolean;
  /** Why the interval is not secure, for a person. */
  readonly reason?: string;
  /** Caps for the MGMCs that must curtail, in the order of the positions given. */
  readonly caps: readonly PositionCap[];
  /** Limits at the reported positions. */
  readonly before: LimitReport;
  /** Limits with the caps applied (the same as before when there are no caps). */
  readonly after: LimitReport;
  /** LPs solved (0 when the interval was secure as reported). */
  readonly iterations: number;
  /** Full power flows run. */
  readonly powerFlows: number;
  /** Total curtailment, W. */
  readonly curtailedW: number;
  /** Time inside the LP solver, summed over the iterations, ms. */
  readonly lpMs: number;
  /** Size of the last LP. */
  readonly lp?: { readonly columns: number; readonly rows: number };
}

export interface NetworkCheckOptions {
  /** The interval's start (ms), carried into the result. */
  readonly interval?: number;
  /** The load that is not an MGMC's for this interval (a forecast); the feeder's base loads when left out. */
  readonly base?: BusPowers;
  /** LP solves at most (refinements of a secure answer included). Default 10. */
  readonly maxIterations?: number;
  /** Distance the LP keeps inside the voltage band, pu (raised per bus while the power flow disagrees). Default 0.0002. */
  readonly voltageMarginPu?: number;
  /** Distance the LP keeps below the loading limit, percentage points (raised per line likewise). Default 0.2. */
  readonly loadingMarginPct?: number;
  /** Highest line loading allowed, % of ampacity. Default 100. */
  readonly maxLoadingPct?: number;
  readonly powerFlow?: PowerFlowOptions;
  /** Cost of one mpu or one A beyond a limit in the LP, against 1 per kW curtailed. Default 1e6. */
  readonly violationCost?: number;
}

/** A solver status other than optimal for the caps LP: a bug or a broken solver, never a feeder property. */
export class NetworkCheckError extends Error {
  override name = 'NetworkCheckError';
}

/** The position an MGMC may take under its caps: the reported one, clipped. */
export function applyCaps(netW: number, caps: { readonly maxImportW?: number; readonly maxExportW?: number }): number {
  let w = netW;
  if (caps.maxImportW !== undefined && w > caps.maxImportW) w = caps.maxImportW;
  if (caps.maxExportW !== undefined && w < -caps.maxExportW) w = -caps.maxExportW;
  return w;
}

/** The bus loads of an interval: the base load plus each position at its bus (kW). */
export function loadsWithPositions(
  feeder: Feeder,
  base: BusPowers,
  positions: readonly ReportedPosition[],
  positionW?: ArrayLike<number>,
): BusPowers {
  const pKw = Float64Array.from(base.pKw);
  const qKvar = Float64Array.from(base.qKvar);
  positions.forEach((p, j) => {
    const i = feeder.busIndex.get(p.bus) as number;
    pKw[i] = (pKw[i] as number) + (positionW === undefined ? p.netW : (positionW[j] as number)) / 1000;
  });
  return { pKw, qKvar };
}

/**
 * Runs the check for one interval. Throws FeederError for positions that cannot be placed (unknown bus, a number
 * that is not finite, an MGMC listed twice) and NetworkCheckError when the solver fails; a feeder that cannot be
 * made secure is a result (status not-secure), not an error.
 */
export async function checkNetwork(
  feeder: Feeder,
  positions: readonly ReportedPosition[],
  solver: Solver,
  options: NetworkCheckOptions = {},
): Promise<NetworkCheck> {
  checkPositions(feeder, positions);
  const base = options.base ?? busLoads(feeder);
  const maxIterations = options.maxIterations ?? 10;
  const limitOptions = { maxLoadingPct: options.maxLoadingPct ?? 100 };
  let powerFlows = 0;
  const solve = (positionW: ArrayLike<number>): { result: PowerFlowResult; report: LimitReport } => {
    powerFlows++;
    const result = powerFlow(feeder, loadsWithPositions(feeder, base, positions, positionW), options.powerFlow);
    return { result, report: checkLimits(feeder, result, limitOptions) };
  };
  const reported = positions.map((p) => p.netW);
  const first = solve(reported);
  const interval = options.interval === undefined ? {} : { interval: options.interval };
  if (first.report.ok) {
    return {
      ...interval,
      status: 'secure',
      secure: true,
      caps: [],
      before: first.report,
      after: first.report,
      iterations: 0,
      powerFlows,
      curtailedW: 0,
      lpMs: 0,
    };
  }

  const lp = new CapsLp(feeder, positions, {
    voltageMarginPu: options.voltageMarginPu ?? 0.0002,
    loadingMarginPct: options.loadingMarginPct ?? 0.2,
    maxLoadingPct: limitOptions.maxLoadingPct,
    violationCost: options.violationCost ?? 1e6,
  });
  // The operating point to linearize at: the reported positions, or, when they have no power flow solution, the
  // nearest scaled-down version of them that has one.
  let point = { positionW: reported, ...first };
  if (!first.result.converged) {
    let found: typeof point | undefined;
    for (const factor of [0.5, 0.25, 0.125, 0]) {
      const scaled = reported.map((w) => w * factor);
      const attempt = solve(scaled);
      if (attempt.result.converged) {
        found = { positionW: scaled, ...attempt };
        break;
      }
    }
    if (found === undefined) {
      return notSecure(
        `the feeder has no power flow solution even with every MGMC at 0 W (${first.result.problem ?? ''}): ` +
          'the base load alone is beyond what it can carry',
        [],
        first.report,
      );
    }
    point = found;
  }

  let lpMs = 0;
  let iterations = 0;
  let last: { caps: PositionCap[]; report: LimitReport } | undefined;
  let best: { caps: PositionCap[]; report: LimitReport; curtailedW: number } | undefined;
  let infeasibleLimits: string[] = [];
  while (iterations < maxIterations) {
    iterations++;
    const solved = await lp.solve(solver, point.result, point.positionW);
    lpMs += solved.solveMs;
    const all = capsFrom(positions, solved.cutKw);
    const capped = positions.map((p, j) => capsOf(all, j, p.netW));
    const check = solve(capped);
    const caps = all.filter((c): c is PositionCap => c !== undefined);
    last = { caps, report: check.report };
    if (check.report.ok) {
      const curtailedW = sum(caps.map((c) => c.curtailedW));
      const previous = best;
      if (previous === undefined || curtailedW < previous.curtailedW) best = { ...last, curtailedW };
      // A secure answer far from where the LP was linearized may curtail more than needed: linearize again at it,
      // with fresh margins, until a step no longer lowers the curtailment by more than the tolerance.
      const settled =
        previous !== undefined && previous.curtailedW - curtailedW <= Math.max(100, 0.002 * previous.curtailedW);
      if (settled || curtailedW === 0) break;
      lp.resetMargins();
      point = { positionW: capped, ...check };
      continue;
    }
    if (solved.slackLimits.length > 0 && best === undefined) {
      // The linear model says no caps meet these limits. Confirm with the power flow at "every MGMC at 0 W": if the
      // feeder breaks its limits even then, no caps can help and more iterations would only repeat this answer.
      infeasibleLimits = solved.slackLimits;
      const zero = solve(positions.map(() => 0));
      if (!zero.report.ok) {
        return notSecure(
          `limits are broken even with every MGMC at 0 W (${worst(zero.report)}): the load that is not the MGMCs' ` +
            'breaks them, so no caps can make the interval secure; the caps sent curtail what makes it worse',
          caps,
          check.report,
        );
      }
    }
    if (check.result.converged) {
      lp.tighten(check.report);
      point = { positionW: capped, ...check };
    } else {
      // The caps overshot into a point without a solution: stay at the last point, with wider margins everywhere.
      lp.widenAll();
    }
  }
  if (best !== undefined) {
    return {
      ...interval,
      status: 'secured',
      secure: true,
      caps: best.caps,
      before: first.report,
      after: best.report,
      iterations,
      powerFlows,
      curtailedW: best.curtailedW,
      lpMs,
      lp: lp.size,
    };
  }
  const final = last as { caps: PositionCap[]; report: LimitReport };
  return notSecure(
    `still not secure after ${maxIterations} iteration${maxIterations === 1 ? '' : 's'} of caps and power flow ` +
      `(${worst(final.report)})` +
      (infeasibleLimits.length > 0 ? `; the linear model could not meet ${infeasibleLimits.join(', ')}` : ''),
    final.caps,
    final.report,
  );

  function notSecure(reason: string, caps: PositionCap[], after: LimitReport): NetworkCheck {
    return {
      ...interval,
      status: 'not-secure',
      secure: false,
      reason,
      caps,
      before: first.report,
      after,
      iterations,
      powerFlows,
      curtailedW: sum(caps.map((c) => c.curtailedW)),
      lpMs,
      ...(iterations > 0 ? { lp: lp.size } : {}),
    };
  }
}

/** The three worst violations, for a reason a person reads. */
function worst(report: LimitReport): string {
  const shown = report.violations.slice(0, 3).map((v) => v.message);
  return report.violations.length > 3 ? `${shown.join('; ')}; …` : shown.join('; ');
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function checkPositions(feeder: Feeder, positions: readonly ReportedPosition[]): void {
  const problems: FeederProblem[] = [];
  const seen = new Set<string>();
  positions.forEach((p, j) => {
    if (seen.has(p.mgmc)) {
      problems.push({ path: ['positions', j, 'mgmc'], expected: 'each MGMC once', hint: `${p.mgmc} is listed twice` });
    }
    seen.add(p.mgmc);
    if (!feeder.busIndex.has(p.bus)) {
      problems.push({
        path: ['positions', j, 'bus'],
        expected: 'a bus of the feeder',
        hint: `MGMC ${p.mgmc} is at bus ${p.bus}, which feeder ${feeder.name} does not have`,
      });
    }
    if (!Number.isFinite(p.netW)) {
      problems.push({ path: ['positions', j, 'netW'], expected: 'a net position in W', hint: `got ${p.netW}` });
    }
    if (p.weight !== undefined && !(Number.isFinite(p.weight) && p.weight > 0)) {
      problems.push({
        path: ['positions', j, 'weight'],
        expected: 'a curtailment weight above 0',
        hint: `MGMC ${p.mgmc}: got ${p.weight}`,
      });
    }
  });
  if (problems.length > 0) throw new FeederError(`${feeder.name} positions`, problems);
}

/** Caps from the LP's cuts (kW): whole W, rounded toward more curtailment; cuts below 1 W are no cap. */
function capsFrom(positions: readonly ReportedPosition[], cutKw: Float64Array): (PositionCap | undefined)[] {
  return positions.map((p, j) => {
    const magnitude = Math.abs(p.netW);
    const raw = (cutKw[j] as number) * 1000;
    if (!(raw >= 1) || magnitude === 0) return undefined;
    const cut = Math.min(magnitude, Math.ceil(raw - 1e-6));
    const allowed = Math.floor(magnitude - cut);
    return {
      mgmc: p.mgmc,
      bus: p.bus,
      positionW: p.netW,
      ...(p.netW > 0 ? { maxImportW: allowed } : { maxExportW: allowed }),
      curtailedW: magnitude - allowed,
    };
  });
}

function capsOf(caps: readonly (PositionCap | undefined)[], j: number, netW: number): number {
  const cap = caps[j];
  return cap === undefined ? netW : applyCaps(netW, cap);
}

interface CapsLpSettings {
  readonly voltageMarginPu: number;
  readonly loadingMarginPct: number;
  readonly maxLoadingPct: number;
  readonly violationCost: number;
}

interface SolvedCaps {
  /** kW cut from each position (indexed like the positions). */
  readonly cutKw: Float64Array;
  /** Limits whose slack the LP had to use (bus or line names). */
  readonly slackLimits: string[];
  readonly solveMs: number;
}

/**
 * The caps LP for one interval, built afresh at each operating point. Margins per limit persist across iterations:
 * a limit the full power flow still finds broken keeps its extra margin, so the next LP stays clear of it.
 */
class CapsLp {
  private readonly voltageMargin: Float64Array;
  private readonly loadingMargin: Float64Array;
  /** The buses the MGMCs sit at (sensitivity columns) and each position's column. */
  private readonly columnBuses: string[];
  private readonly columnOf: number[];
  size = { columns: 0, rows: 0 };

  constructor(
    private readonly feeder: Feeder,
    private readonly positions: readonly ReportedPosition[],
    private readonly settings: CapsLpSettings,
  ) {
    this.voltageMargin = new Float64Array(feeder.buses.length).fill(settings.voltageMarginPu);
    this.loadingMargin = new Float64Array(feeder.lines.length).fill(settings.loadingMarginPct);
    this.columnBuses = [...new Set(positions.map((p) => p.bus))];
    this.columnOf = positions.map((p) => this.columnBuses.indexOf(p.bus));
  }

  /** Limits still broken by the capped positions get a margin of their excess on top of what they had. */
  tighten(report: LimitReport): void {
    for (const v of report.violations) {
      if (v.kind === 'undervoltage' || v.kind === 'overvoltage') {
        const i = this.feeder.busIndex.get(v.element);
        if (i !== undefined) {
          this.voltageMargin[i] = (this.voltageMargin[i] as number) + v.excess + this.settings.voltageMarginPu;
        }
      } else if (v.kind === 'overload') {
        const l = this.feeder.lineIndex.get(v.element);
        if (l !== undefined) {
          this.loadingMargin[l] = (this.loadingMargin[l] as number) + v.excess + this.settings.loadingMarginPct;
        }
      }
    }
  }

  /** Back to the first margins: for a linearization at a secure point, close to where the limits bind. */
  resetMargins(): void {
    this.voltageMargin.fill(this.settings.voltageMarginPu);
    this.loadingMargin.fill(this.settings.loadingMarginPct);
  }

  widenAll(): void {
    for (let i = 0; i < this.voltageMargin.length; i++) {
      this.voltageMargin[i] = (this.voltageMargin[i] as number) * 2 + 0.001;
    }
    for (let l = 0; l < this.loadingMargin.length; l++) {
      this.loadingMargin[l] = (this.loadingMargin[l] as number) * 2 + 1;
    }
  }

  /** Builds and solves the LP linearized at `point` (positions `pointW`, W). */
  async solve(solver: Solver, point: PowerFlowResult, pointW: readonly number[]): Promise<SolvedCaps> {
    const { feeder, positions, settings } = this;
    const sens = sensitivities(feeder, point, { buses: this.columnBuses });
    const band = feeder.voltageBand;
    const lp = new LpBuilder('dso_caps');
    // Column j: kW cut from position j toward 0. Δ consumption = -sign(p_j)·c_j + (p_j - x_j).
    const cutCol: number[] = [];
    const maxCut: number[] = [];
    const sign: number[] = [];
    const shift: number[] = [];
    positions.forEach((p, j) => {
      const magnitudeKw = Math.abs(p.netW) / 1000;
      sign.push(Math.sign(p.netW));
      maxCut.push(magnitudeKw);
      shift.push((p.netW - (pointW[j] as number)) / 1000);
      cutCol.push(magnitudeKw > 0 ? lp.addColumn(`c${j}`, 0, magnitudeKw, p.weight ?? 1) : -1);
    });
    const slackCost = settings.violationCost;
    const slackNames: { col: number; name: string }[] = [];
    /**
     * One elastic row `lower <= value + Σ coef_j·c_j <= upper` (value: the linear prediction at the reported
     * positions), left out when no choice of cuts can bring it within reach of a bound.
     */
    const limitRow = (
      key: string,
      name: string,
      value: number,
      coef: readonly number[],
      lower: number,
      upper: number,
    ): void => {
      let low = value;
      let high = value;
      const terms: [number, number][] = [];
      coef.forEach((a, j) => {
        const col = cutCol[j] as number;
        if (col < 0 || a === 0) return;
        const reach = a * (maxCut[j] as number);
        if (reach < 0) low += reach;
        else high += reach;
        terms.push([col, a]);
      });
      // Within reach, with room for the linearization's error: the row can bind, so it must be there.
      const guard = 0.02 * (high - low) + 1e-9;
      const needLower = lower > Number.NEGATIVE_INFINITY && low - guard < lower;
      const needUpper = upper < Number.POSITIVE_INFINITY && high + guard > upper;
      if (!needLower && !needUpper) return;
      if (needLower) {
        const s = lp.addColumn(`sl_${key}`, 0, Number.POSITIVE_INFINITY, slackCost);
        terms.push([s, 1]);
        slackNames.push({ col: s, name });
      }
      if (needUpper) {
        const s = lp.addColumn(`su_${key}`, 0, Number.POSITIVE_INFINITY, slackCost);
        terms.push([s, -1]);
        slackNames.push({ col: s, name });
      }
      lp.addRow(
        `r_${key}`,
        needLower ? lower - value : Number.NEGATIVE_INFINITY,
        needUpper ? upper - value : Number.POSITIVE_INFINITY,
        terms,
      );
    };

    const slack = feeder.topology.slack;
    // Voltage rows in mpu (sensitivities are ~1e-5 pu/kW; mpu keeps the coefficients near the cuts' scale).
    for (let i = 0; i < feeder.buses.length; i++) {
      if (i === slack) continue;
      let value = (point.buses[i]?.vPu as number) * 1000;
      const coef = positions.map((_, j) => {
        const s = sens.dVdP.at(i, this.columnOf[j] as number) * 1000;
        value += s * (shift[j] as number);
        return -s * (sign[j] as number);
      });
      const m = (this.voltageMargin[i] as number) * 1000;
      limitRow(`v${i}`, `bus ${feeder.buses[i]?.name}`, value, coef, band.min * 1000 + m, band.max * 1000 - m);
    }
    // Line rows in A.
    for (let l = 0; l < feeder.lines.length; l++) {
      const line = point.lines[l];
      if (line === undefined || !line.inService) continue;
      let value = line.currentA;
      const coef = positions.map((_, j) => {
        const s = sens.dIdP.at(l, this.columnOf[j] as number);
        value += s * (shift[j] as number);
        return -s * (sign[j] as number);
      });
      const limit = (line.ampacityA * (settings.maxLoadingPct - (this.loadingMargin[l] as number))) / 100;
      limitRow(`i${l}`, `line ${line.name}`, value, coef, Number.NEGATIVE_INFINITY, limit);
    }
    const program = lp.build();
    this.size = { columns: program.colNames.length, rows: program.rowNames.length };
    const result = await solver.solve(program);
    if (result.status !== 'optimal') {
      throw new NetworkCheckError(
        `the caps LP of feeder ${feeder.name} ended ${result.status}${result.message ? ` (${result.message})` : ''}; ` +
          'with elastic limits it always has a solution, so the solver failed',
      );
    }
    const cutKw = new Float64Array(positions.length);
    cutCol.forEach((col, j) => {
      if (col >= 0) cutKw[j] = Math.max(0, result.colValue[col] as number);
    });
    const slackLimits = [
      ...new Set(slackNames.filter((s) => (result.colValue[s.col] as number) > 1e-6).map((s) => s.name)),
    ];
    return { cutKw, slackLimits, solveMs: result.solveMs };
  }
}
