/**
 * Radial power flow by backward/forward sweep (current summation) on complex per-unit voltages: loads draw constant
 * power, the backward sweep sums branch currents toward the substation, the forward sweep drops voltage along each
 * line, until the largest voltage change between sweeps is below the tolerance. A run that does not get there says
 * so (status, iterations, last mismatch, and the bus where the voltage fell furthest); its numbers are never passed
 * off as a solution (limits.ts reports it as a violation, sensitivity.ts refuses it).
 */
import { type BusSpec, type Feeder, FeederError, type FeederProblem } from './feeder.js';

/** Per-bus consumption, indexed like Feeder.buses: kW and kvar, positive for load, negative for generation. */
export interface BusPowers {
  readonly pKw: Float64Array;
  readonly qKvar: Float64Array;
}

/** A net position of one MGMC for one interval: what it draws from the feeder (negative: what it feeds in). */
export interface MgmcPosition {
  readonly pKw: number;
  readonly qKvar?: number;
}

export interface LoadAdjustment {
  /** Multiplies every base load (P and Q). */
  readonly scale?: number;
  /** Replaces the base load of these buses; the scale does not apply to a value given here. */
  readonly buses?: Readonly<Record<string, { readonly pKw?: number; readonly qKvar?: number }>>;
  /** MGMC net positions, added to the load of the bus each MGMC sits at (feeder.mgmcs). */
  readonly mgmcs?: Readonly<Record<string, MgmcPosition>>;
}

/** The feeder's base loads, optionally scaled, overridden per bus and with MGMC net positions added. */
export function busLoads(feeder: Feeder, adjust: LoadAdjustment = {}): BusPowers {
  const n = feeder.buses.length;
  const pKw = new Float64Array(n);
  const qKvar = new Float64Array(n);
  const scale = adjust.scale ?? 1;
  const problems: FeederProblem[] = [];
  if (!Number.isFinite(scale) || scale < 0) {
    problems.push({ path: ['scale'], expected: 'a load scale of at least 0', hint: `got ${scale}` });
  }
  for (const [i, bus] of feeder.buses.entries()) {
    pKw[i] = bus.pKw * scale;
    qKvar[i] = bus.qKvar * scale;
  }
  for (const [name, given] of Object.entries(adjust.buses ?? {})) {
    const i = feeder.busIndex.get(name);
    if (i === undefined) {
      problems.push({ path: ['buses', name], expected: 'the name of a bus of the feeder', hint: `no bus ${name}` });
      continue;
    }
    if (given.pKw !== undefined) pKw[i] = given.pKw;
    if (given.qKvar !== undefined) qKvar[i] = given.qKvar;
  }
  const at = new Map(feeder.mgmcs.map((m) => [m.mgmc, m.bus]));
  for (const [mgmc, position] of Object.entries(adjust.mgmcs ?? {})) {
    const bus = at.get(mgmc);
    if (bus === undefined) {
      problems.push({
        path: ['mgmcs', mgmc],
        expected: 'an MGMC attached to the feeder (its mgmcs: list)',
        hint: `${mgmc} is not attached to feeder ${feeder.name}`,
      });
      continue;
    }
    const i = feeder.busIndex.get(bus) as number;
    pKw[i] = (pKw[i] as number) + position.pKw;
    qKvar[i] = (qKvar[i] as number) + (position.qKvar ?? 0);
  }
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(pKw[i]) || !Number.isFinite(qKvar[i])) {
      const name = (feeder.buses[i] as BusSpec).name;
      problems.push({
        path: ['buses', name],
        expected: 'a finite load',
        hint: `bus ${name}: ${pKw[i]} kW, ${qKvar[i]} kvar`,
      });
    }
  }
  if (problems.length > 0) throw new FeederError(`${feeder.name} loads`, problems);
  return { pKw, qKvar };
}

export interface PowerFlowOptions {
  /** Largest voltage change between two sweeps that counts as converged, pu. Default 1e-9. */
  readonly tolerancePu?: number;
  /** Sweeps before giving up. Default 100. */
  readonly maxIterations?: number;
}

/**
 * converged: within the tolerance; diverged: a voltage collapsed (below 0.05 pu) or a value stopped being a number,
 * the usual sign that the load has no solution (beyond the nose of the PV curve); iteration-limit: still moving
 * after maxIterations.
 */
export type PowerFlowStatus = 'converged' | 'diverged' | 'iteration-limit';

export interface BusResult {
  readonly name: string;
  readonly vPu: number;
  readonly angleDeg: number;
  /** The consumption the run used at this bus. */
  readonly pKw: number;
  readonly qKvar: number;
}

export interface LineResult {
  readonly name: string;
  readonly from: string;
  readonly to: string;
  /** An open switch carries nothing. */
  readonly inService: boolean;
  /** The end nearer the substation (undefined for an open switch). */
  readonly upstream?: string;
  /** Power entering the line at its upstream end, toward the downstream end (negative: flowing back). */
  readonly pKw: number;
  readonly qKvar: number;
  readonly currentA: number;
  readonly ampacityA: number;
  readonly loadingPct: number;
  readonly lossKw: number;
  readonly lossKvar: number;
}

export interface PowerFlowResult {
  readonly feeder: string;
  readonly status: PowerFlowStatus;
  readonly converged: boolean;
  /** Sweeps done. */
  readonly iterations: number;
  /** Largest voltage change of the last sweep, pu. */
  readonly mismatchPu: number;
  /** For a run that did not converge: what happened, naming the bus where the voltage fell furthest. */
  readonly problem?: string;
  readonly buses: readonly BusResult[];
  readonly lines: readonly LineResult[];
  readonly lossKw: number;
  readonly lossKvar: number;
  readonly loadKw: number;
  readonly loadKvar: number;
  /** What the substation supplies: load plus losses. */
  readonly slackKw: number;
  readonly slackKvar: number;
  readonly minVoltage: { readonly bus: string; readonly pu: number };
  readonly maxVoltage: { readonly bus: string; readonly pu: number };
  /** The solved state in per unit, indexed like Feeder.buses, for sensitivities. */
  readonly state: PowerFlowState;
}

export interface PowerFlowState {
  /** Complex bus voltages, pu. */
  readonly vRe: Float64Array;
  readonly vIm: Float64Array;
  /** Current of the line from each bus to its parent (0 at the slack), pu, flowing away from the substation. */
  readonly jRe: Float64Array;
  readonly jIm: Float64Array;
  /** Consumption, pu. */
  readonly pPu: Float64Array;
  readonly qPu: Float64Array;
}

/** Below this the voltage has collapsed: no load flow solution is anywhere near. */
const COLLAPSE_PU = 0.05;

/** Runs the sweep for one set of bus loads (busLoads(feeder) when left out). */
export function powerFlow(feeder: Feeder, loads?: BusPowers, options: PowerFlowOptions = {}): PowerFlowResult {
  const tolerance = options.tolerancePu ?? 1e-9;
  const maxIterations = options.maxIterations ?? 100;
  const given = loads ?? busLoads(feeder);
  const { order, parent, parentLine, slack } = feeder.topology;
  const n = feeder.buses.length;
  if (given.pKw.length !== n || given.qKvar.length !== n) {
    throw new RangeError(`loads for ${given.pKw.length} buses given to feeder ${feeder.name} of ${n} buses`);
  }
  const kwPerPu = feeder.baseMva * 1000;
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    p[i] = (given.pKw[i] as number) / kwPerPu;
    q[i] = (given.qKvar[i] as number) / kwPerPu;
  }
  // Per-unit impedance of the line to each bus's parent.
  const r = new Float64Array(n);
  const x = new Float64Array(n);
  for (let b = 0; b < n; b++) {
    const line = parentLine[b] as number;
    if (line < 0) continue;
    const spec = feeder.lines[line];
    r[b] = (spec?.rOhm as number) / feeder.zBaseOhm;
    x[b] = (spec?.xOhm as number) / feeder.zBaseOhm;
  }
  const vs = feeder.slackVoltagePu;
  const vRe = new Float64Array(n).fill(vs);
  const vIm = new Float64Array(n);
  const jRe = new Float64Array(n);
  const jIm = new Float64Array(n);

  let status: PowerFlowStatus = 'iteration-limit';
  let iterations = 0;
  let mismatch = Number.POSITIVE_INFINITY;
  let worstBus = slack;
  while (iterations < maxIterations) {
    iterations++;
    backwardSweep(order, parent, p, q, vRe, vIm, jRe, jIm);
    mismatch = 0;
    let lowest = Number.POSITIVE_INFINITY;
    for (let k = 1; k < n; k++) {
      const b = order[k] as number;
      const a = parent[b] as number;
      const re = (vRe[a] as number) - ((r[b] as number) * (jRe[b] as number) - (x[b] as number) * (jIm[b] as number));
      const im = (vIm[a] as number) - ((r[b] as number) * (jIm[b] as number) + (x[b] as number) * (jRe[b] as number));
      const dRe = re - (vRe[b] as number);
      const dIm = im - (vIm[b] as number);
      const change = Math.sqrt(dRe * dRe + dIm * dIm);
      // NaN compares false: the `!(<=)` form lets a NaN change count as the largest.
      if (!(change <= mismatch)) mismatch = change;
      vRe[b] = re;
      vIm[b] = im;
      const magnitude = Math.sqrt(re * re + im * im);
      if (magnitude < lowest) {
        lowest = magnitude;
        worstBus = b;
      }
    }
    if (!Number.isFinite(mismatch) || lowest < COLLAPSE_PU || Number.isNaN(lowest)) {
      status = 'diverged';
      break;
    }
    if (mismatch <= tolerance) {
      status = 'converged';
      break;
    }
  }
  // Branch currents of the final voltages, so flows, losses and the slack power satisfy Kirchhoff's current law.
  if (status === 'converged') backwardSweep(order, parent, p, q, vRe, vIm, jRe, jIm);
  const worstName = (feeder.buses[worstBus] as BusSpec).name;
  const problem =
    status === 'converged'
      ? undefined
      : status === 'diverged'
        ? `the power flow diverged at sweep ${iterations}: the voltage at bus ${worstName} collapsed ` +
          `(${fmt(Math.hypot(vRe[worstBus] as number, vIm[worstBus] as number))} pu); the load is beyond what the ` +
          `feeder can carry`
        : `the power flow did not converge in ${iterations} sweeps (last voltage change ${mismatch.toExponential(2)} ` +
          `pu, lowest voltage at bus ${worstName}); raise the iteration cap or reduce the load`;
  return summarize(feeder, status, iterations, mismatch, problem, { vRe, vIm, jRe, jIm, pPu: p, qPu: q });
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}

/** Load currents conj(S/V) summed from the leaves to the slack into each bus's line current. */
function backwardSweep(
  order: Int32Array,
  parent: Int32Array,
  p: Float64Array,
  q: Float64Array,
  vRe: Float64Array,
  vIm: Float64Array,
  jRe: Float64Array,
  jIm: Float64Array,
): void {
  const n = order.length;
  for (let b = 0; b < n; b++) {
    const re = vRe[b] as number;
    const im = vIm[b] as number;
    const d = re * re + im * im;
    const pb = p[b] as number;
    const qb = q[b] as number;
    jRe[b] = (pb * re + qb * im) / d;
    jIm[b] = (pb * im - qb * re) / d;
  }
  for (let k = n - 1; k > 0; k--) {
    const b = order[k] as number;
    const a = parent[b] as number;
    jRe[a] = (jRe[a] as number) + (jRe[b] as number);
    jIm[a] = (jIm[a] as number) + (jIm[b] as number);
  }
}

function summarize(
  feeder: Feeder,
  status: PowerFlowStatus,
  iterations: number,
  mismatch: number,
  problem: string | undefined,
  state: PowerFlowState,
): PowerFlowResult {
  const { vRe, vIm, jRe, jIm, pPu, qPu } = state;
  const kwPerPu = feeder.baseMva * 1000;
  const { parent, parentLine, slack, lineFrom } = feeder.topology;
  const buses: BusResult[] = feeder.buses.map((bus, i) => ({
    name: bus.name,
    vPu: Math.hypot(vRe[i] as number, vIm[i] as number),
    angleDeg: (Math.atan2(vIm[i] as number, vRe[i] as number) * 180) / Math.PI,
    pKw: (pPu[i] as number) * kwPerPu,
    qKvar: (qPu[i] as number) * kwPerPu,
  }));
  const childOf = new Int32Array(feeder.lines.length).fill(-1);
  for (let b = 0; b < feeder.buses.length; b++) {
    const line = parentLine[b] as number;
    if (line >= 0) childOf[line] = b;
  }
  let lossKw = 0;
  let lossKvar = 0;
  const lines: LineResult[] = feeder.lines.map((line, l) => {
    const b = childOf[l] as number;
    if (b < 0) {
      return {
        name: line.name,
        from: line.from,
        to: line.to,
        inService: false,
        pKw: 0,
        qKvar: 0,
        currentA: 0,
        ampacityA: line.ampacityA,
        loadingPct: 0,
        lossKw: 0,
        lossKvar: 0,
      };
    }
    const a = parent[b] as number;
    const ire = jRe[b] as number;
    const iim = jIm[b] as number;
    const i2 = ire * ire + iim * iim;
    // S = V conj(J) at the upstream end.
    const vr = vRe[a] as number;
    const vi = vIm[a] as number;
    const lossP = ((i2 * line.rOhm) / feeder.zBaseOhm) * kwPerPu;
    const lossQ = ((i2 * line.xOhm) / feeder.zBaseOhm) * kwPerPu;
    lossKw += lossP;
    lossKvar += lossQ;
    const currentA = Math.sqrt(i2) * feeder.iBaseA;
    return {
      name: line.name,
      from: line.from,
      to: line.to,
      inService: true,
      upstream: (lineFrom[l] as number) === a ? line.from : line.to,
      pKw: (vr * ire + vi * iim) * kwPerPu,
      qKvar: (vi * ire - vr * iim) * kwPerPu,
      currentA,
      ampacityA: line.ampacityA,
      loadingPct: (100 * currentA) / line.ampacityA,
      lossKw: lossP,
      lossKvar: lossQ,
    };
  });
  let loadKw = 0;
  let loadKvar = 0;
  for (let i = 0; i < feeder.buses.length; i++) {
    loadKw += (pPu[i] as number) * kwPerPu;
    loadKvar += (qPu[i] as number) * kwPerPu;
  }
  const vr = vRe[slack] as number;
  const vi = vIm[slack] as number;
  // jRe/jIm at the slack hold the total current it supplies (its own load and every line below it).
  const slackKw = (vr * (jRe[slack] as number) + vi * (jIm[slack] as number)) * kwPerPu;
  const slackKvar = (vi * (jRe[slack] as number) - vr * (jIm[slack] as number)) * kwPerPu;
  let min = 0;
  let max = 0;
  for (let i = 1; i < buses.length; i++) {
    const v = (buses[i] as BusResult).vPu;
    if (v < (buses[min] as BusResult).vPu) min = i;
    if (v > (buses[max] as BusResult).vPu) max = i;
  }
  return {
    feeder: feeder.name,
    status,
    converged: status === 'converged',
    iterations,
    mismatchPu: mismatch,
    ...(problem === undefined ? {} : { problem }),
    buses,
    lines,
    lossKw,
    lossKvar,
    loadKw,
    loadKvar,
    slackKw,
    slackKvar,
    minVoltage: { bus: (buses[min] as BusResult).name, pu: (buses[min] as BusResult).vPu },
    maxVoltage: { bus: (buses[max] as BusResult).name, pu: (buses[max] as BusResult).vPu },
    state,
  };
}

/** A power flow that did not converge where a solution is needed (sensitivities, reconfiguration). */
export class PowerFlowError extends Error {
  override readonly name = 'PowerFlowError';
  /** EXIT.failed: the feeder is fine, this operating point has no solution. */
  readonly exitCode = 1;

  constructor(readonly result: PowerFlowResult) {
    super(`feeder ${result.feeder}: ${result.problem ?? 'no solution'}`);
  }
}

/** The result itself when it converged; a PowerFlowError with the reason otherwise. */
export function requireConverged(result: PowerFlowResult): PowerFlowResult {
  if (!result.converged) throw new PowerFlowError(result);
  return result;
}
