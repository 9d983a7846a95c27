/**
 * Limits of the feeder: the voltage band at every bus and the ampacity of every line. A power flow that did not
 * converge is a violation of its own: an interval the DSO cannot solve is not secure.
 */
import type { Feeder, VoltageBand } from './feeder.js';
import { type BusPowers, type PowerFlowOptions, type PowerFlowResult, powerFlow } from './powerflow.js';

export type ViolationKind = 'undervoltage' | 'overvoltage' | 'overload' | 'not-converged';

export interface Violation {
  readonly kind: ViolationKind;
  /** The bus (voltage), line (overload) or feeder (not converged). */
  readonly element: string;
  /** pu for voltages, % of ampacity for overloads, the last mismatch (pu) when not converged. */
  readonly value: number;
  readonly limit: number;
  /** How far beyond the limit: pu below min / above max, percentage points above the loading limit. */
  readonly excess: number;
  readonly message: string;
}

export interface LimitReport {
  readonly interval?: string | number;
  /** True when the power flow converged and nothing is beyond a limit. */
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  readonly minVoltage: { readonly bus: string; readonly pu: number };
  readonly maxVoltage: { readonly bus: string; readonly pu: number };
  readonly maxLoading: { readonly line: string; readonly pct: number } | undefined;
  readonly lossKw: number;
}

export interface LimitOptions {
  /** The feeder's own band when left out. */
  readonly band?: VoltageBand;
  /** Highest loading allowed, % of ampacity. Default 100. */
  readonly maxLoadingPct?: number;
}

/** Every limit a power flow result breaks, worst first within each kind (voltages, then overloads). */
export function checkLimits(feeder: Feeder, result: PowerFlowResult, options: LimitOptions = {}): LimitReport {
  const band = options.band ?? feeder.voltageBand;
  const maxLoading = options.maxLoadingPct ?? 100;
  const violations: Violation[] = [];
  let worstLine: { line: string; pct: number } | undefined;
  for (const line of result.lines) {
    if (line.inService && (worstLine === undefined || line.loadingPct > worstLine.pct)) {
      worstLine = { line: line.name, pct: line.loadingPct };
    }
  }
  const summary = {
    minVoltage: result.minVoltage,
    maxVoltage: result.maxVoltage,
    maxLoading: worstLine,
    lossKw: result.lossKw,
  };
  if (!result.converged) {
    violations.push({
      kind: 'not-converged',
      element: feeder.name,
      value: result.mismatchPu,
      limit: 0,
      excess: Number.POSITIVE_INFINITY,
      message: result.problem ?? 'the power flow did not converge',
    });
    return { ok: false, violations, ...summary };
  }
  const under: Violation[] = [];
  const over: Violation[] = [];
  for (const bus of result.buses) {
    if (bus.vPu < band.min) {
      under.push({
        kind: 'undervoltage',
        element: bus.name,
        value: bus.vPu,
        limit: band.min,
        excess: band.min - bus.vPu,
        message: `bus ${bus.name}: ${bus.vPu.toFixed(4)} pu, below ${band.min} pu`,
      });
    } else if (bus.vPu > band.max) {
      over.push({
        kind: 'overvoltage',
        element: bus.name,
        value: bus.vPu,
        limit: band.max,
        excess: bus.vPu - band.max,
        message: `bus ${bus.name}: ${bus.vPu.toFixed(4)} pu, above ${band.max} pu`,
      });
    }
  }
  const overloads: Violation[] = [];
  for (const line of result.lines) {
    if (!line.inService || line.loadingPct <= maxLoading) continue;
    overloads.push({
      kind: 'overload',
      element: line.name,
      value: line.loadingPct,
      limit: maxLoading,
      excess: line.loadingPct - maxLoading,
      message:
        `line ${line.name} (${line.from}-${line.to}): ${line.currentA.toFixed(1)} A, ` +
        `${line.loadingPct.toFixed(1)} % of ${line.ampacityA} A`,
    });
  }
  const worstFirst = (a: Violation, b: Violation): number => b.excess - a.excess;
  violations.push(...under.sort(worstFirst), ...over.sort(worstFirst), ...overloads.sort(worstFirst));
  return { ok: violations.length === 0, violations, ...summary };
}

/** One interval of a series: its id (e.g. the interval start in ms) and the bus loads in it. */
export interface IntervalLoads {
  readonly interval: string | number;
  readonly loads: BusPowers;
}

export interface IntervalAssessment {
  readonly interval: string | number;
  readonly result: PowerFlowResult;
  readonly report: LimitReport;
}

export interface SeriesReport {
  /** True when every interval is secure. */
  readonly ok: boolean;
  readonly intervals: readonly IntervalAssessment[];
  /** The intervals with at least one violation, in the order given. */
  readonly violating: readonly (string | number)[];
}

/** Runs the power flow for every interval and checks its limits. */
export function assessSeries(
  feeder: Feeder,
  series: readonly IntervalLoads[],
  options: LimitOptions & { readonly powerFlow?: PowerFlowOptions } = {},
): SeriesReport {
  const intervals = series.map(({ interval, loads }) => {
    const result = powerFlow(feeder, loads, options.powerFlow);
    return { interval, result, report: { ...checkLimits(feeder, result, options), interval } };
  });
  const violating = intervals.filter((i) => !i.report.ok).map((i) => i.interval);
  return { ok: violating.length === 0, intervals, violating };
}
