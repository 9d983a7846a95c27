/**
 * Linear sensitivities of a solved feeder to extra consumption at chosen buses: how much each bus voltage, each line
 * current and each line flow moves per kW (or kvar) of extra load at a bus. The DSO turns these into caps on MGMC
 * net positions: a cap is the room to a limit divided by the sensitivity.
 *
 * They are the exact derivatives of the power flow at the solved point (not the lossless LinDistFlow estimate): the
 * sweep's equations are differentiated, V = V_parent - Z·J and I = conj(S/V), and the resulting linear system is
 * solved by the same backward/forward sweep, which converges as fast as the power flow did. Losses, the voltage
 * dependence of the constant-power loads and angles are all in. test/unit/grid/sensitivity.test.ts checks them
 * against finite differences of the full power flow.
 */
import type { Feeder } from './feeder.js';
import { type PowerFlowResult, requireConverged } from './powerflow.js';

/** A dense row-major matrix with named rows and columns. */
export class Matrix {
  readonly data: Float64Array;

  constructor(
    readonly rowNames: readonly string[],
    readonly columnNames: readonly string[],
  ) {
    this.data = new Float64Array(rowNames.length * columnNames.length);
  }

  get rows(): number {
    return this.rowNames.length;
  }

  get cols(): number {
    return this.columnNames.length;
  }

  at(row: number, col: number): number {
    return this.data[row * this.columnNames.length + col] as number;
  }

  set(row: number, col: number, value: number): void {
    this.data[row * this.columnNames.length + col] = value;
  }

  /** The value for a row and a column by name; throws for a name that is not there. */
  get(row: string, col: string): number {
    const r = this.rowNames.indexOf(row);
    const c = this.columnNames.indexOf(col);
    if (r < 0 || c < 0) throw new RangeError(`no ${r < 0 ? `row ${row}` : `column ${col}`} in this matrix`);
    return this.at(r, c);
  }
}

/**
 * Rows are all buses (voltage matrices) or all lines (line matrices) in feeder order; columns are the buses whose
 * extra load is varied. Signs are for extra consumption: positive kW is more load (an MGMC importing more); an MGMC
 * exporting more is a negative kW.
 */
export interface Sensitivities {
  readonly buses: readonly string[];
  readonly lines: readonly string[];
  readonly columns: readonly string[];
  /** d|V_i|/dP_k: pu per kW (negative: more load lowers the voltage). */
  readonly dVdP: Matrix;
  /** d|V_i|/dQ_k: pu per kvar. */
  readonly dVdQ: Matrix;
  /**
   * d|I_l|/dP_k: A per kW. For a line that carries no current the derivative of |I| has no sign; its rows hold the
   * magnitude of the current change instead (the current can only grow).
   */
  readonly dIdP: Matrix;
  /** d|I_l|/dQ_k: A per kvar. */
  readonly dIdQ: Matrix;
  /**
   * dP_l/dP_k: share of an extra kW at bus k that flows through line l (at its upstream end, toward the downstream
   * end). About 1 for the lines between k and the substation (a little more: the extra losses), about 0 elsewhere.
   */
  readonly flowShareP: Matrix;
  /** dQ_l/dQ_k: the same for reactive power. */
  readonly flowShareQ: Matrix;
}

export interface SensitivityOptions {
  /** The buses to vary (columns); every bus when left out. */
  readonly buses?: readonly string[];
}

/** Sensitivities at a converged power flow of this feeder; throws PowerFlowError for one that did not converge. */
export function sensitivities(
  feeder: Feeder,
  solution: PowerFlowResult,
  options: SensitivityOptions = {},
): Sensitivities {
  requireConverged(solution);
  if (solution.feeder !== feeder.name || solution.buses.length !== feeder.buses.length) {
    throw new RangeError(`the power flow result is of feeder ${solution.feeder}, not of ${feeder.name}`);
  }
  const columns = options.buses ?? feeder.buses.map((b) => b.name);
  const columnIndex = columns.map((name) => {
    const i = feeder.busIndex.get(name);
    if (i === undefined) throw new RangeError(`no bus ${name} in feeder ${feeder.name}`);
    return i;
  });
  const buses = feeder.buses.map((b) => b.name);
  const lines = feeder.lines.map((l) => l.name);
  const result: Sensitivities = {
    buses,
    lines,
    columns,
    dVdP: new Matrix(buses, columns),
    dVdQ: new Matrix(buses, columns),
    dIdP: new Matrix(lines, columns),
    dIdQ: new Matrix(lines, columns),
    flowShareP: new Matrix(lines, columns),
    flowShareQ: new Matrix(lines, columns),
  };
  const linearized = new LinearizedSweep(feeder, solution);
  for (const [col, bus] of columnIndex.entries()) {
    for (const kind of ['p', 'q'] as const) {
      linearized.solve(bus, kind);
      linearized.write(
        col,
        kind === 'p' ? result.dVdP : result.dVdQ,
        kind === 'p' ? result.dIdP : result.dIdQ,
        kind === 'p' ? result.flowShareP : result.flowShareQ,
        kind,
      );
    }
  }
  return result;
}

/** The power flow differentiated at a solution, solved for one unit of extra load at one bus at a time. */
class LinearizedSweep {
  private readonly n: number;
  private readonly order: Int32Array;
  private readonly parent: Int32Array;
  private readonly parentLine: Int32Array;
  private readonly r: Float64Array;
  private readonly x: Float64Array;
  /** 1/conj(V) per bus. */
  private readonly wRe: Float64Array;
  private readonly wIm: Float64Array;
  /** conj(S)/conj(V)² per bus: how a load's current answers a change of its voltage. */
  private readonly cRe: Float64Array;
  private readonly cIm: Float64Array;
  private readonly dvRe: Float64Array;
  private readonly dvIm: Float64Array;
  private readonly djRe: Float64Array;
  private readonly djIm: Float64Array;
  /** One kW in per unit: the size of the perturbation, so the results come out per kW. */
  private readonly unit: number;

  constructor(
    private readonly feeder: Feeder,
    private readonly solution: PowerFlowResult,
  ) {
    const { order, parent, parentLine } = feeder.topology;
    this.n = feeder.buses.length;
    this.order = order;
    this.parent = parent;
    this.parentLine = parentLine;
    this.unit = 1 / (feeder.baseMva * 1000);
    const n = this.n;
    this.r = new Float64Array(n);
    this.x = new Float64Array(n);
    for (let b = 0; b < n; b++) {
      const line = parentLine[b] as number;
      if (line < 0) continue;
      this.r[b] = (feeder.lines[line]?.rOhm as number) / feeder.zBaseOhm;
      this.x[b] = (feeder.lines[line]?.xOhm as number) / feeder.zBaseOhm;
    }
    const { vRe, vIm, pPu, qPu } = solution.state;
    this.wRe = new Float64Array(n);
    this.wIm = new Float64Array(n);
    this.cRe = new Float64Array(n);
    this.cIm = new Float64Array(n);
    for (let b = 0; b < n; b++) {
      const vr = vRe[b] as number;
      const vi = vIm[b] as number;
      const d = vr * vr + vi * vi;
      // 1/conj(V) = V/|V|².
      const wr = vr / d;
      const wi = vi / d;
      this.wRe[b] = wr;
      this.wIm[b] = wi;
      // conj(S)·W² with conj(S) = p - jq.
      const w2r = wr * wr - wi * wi;
      const w2i = 2 * wr * wi;
      const p = pPu[b] as number;
      const q = qPu[b] as number;
      this.cRe[b] = p * w2r + q * w2i;
      this.cIm[b] = p * w2i - q * w2r;
    }
    this.dvRe = new Float64Array(n);
    this.dvIm = new Float64Array(n);
    this.djRe = new Float64Array(n);
    this.djIm = new Float64Array(n);
  }

  /** Fills dV and dJ for one kW (kind p) or one kvar (kind q) of extra load at `bus`. */
  solve(bus: number, kind: 'p' | 'q'): void {
    const { n, order, parent, r, x, wRe, wIm, cRe, cIm, dvRe, dvIm, djRe, djIm } = this;
    dvRe.fill(0);
    dvIm.fill(0);
    // conj(dS) for dS = unit (p) or j·unit (q).
    const dsRe = kind === 'p' ? this.unit : 0;
    const dsIm = kind === 'p' ? 0 : -this.unit;
    let scale = 0;
    for (let iteration = 1; ; iteration++) {
      // dI_b = conj(dS_b)·W_b - C_b·conj(dV_b), then summed toward the slack.
      for (let b = 0; b < n; b++) {
        const vr = dvRe[b] as number;
        const vi = -(dvIm[b] as number);
        djRe[b] = -((cRe[b] as number) * vr - (cIm[b] as number) * vi);
        djIm[b] = -((cRe[b] as number) * vi + (cIm[b] as number) * vr);
      }
      djRe[bus] = (djRe[bus] as number) + dsRe * (wRe[bus] as number) - dsIm * (wIm[bus] as number);
      djIm[bus] = (djIm[bus] as number) + dsRe * (wIm[bus] as number) + dsIm * (wRe[bus] as number);
      for (let k = n - 1; k > 0; k--) {
        const b = order[k] as number;
        const a = parent[b] as number;
        djRe[a] = (djRe[a] as number) + (djRe[b] as number);
        djIm[a] = (djIm[a] as number) + (djIm[b] as number);
      }
      let change = 0;
      for (let k = 1; k < n; k++) {
        const b = order[k] as number;
        const a = parent[b] as number;
        const re =
          (dvRe[a] as number) - ((r[b] as number) * (djRe[b] as number) - (x[b] as number) * (djIm[b] as number));
        const im =
          (dvIm[a] as number) - ((r[b] as number) * (djIm[b] as number) + (x[b] as number) * (djRe[b] as number));
        change = Math.max(change, Math.abs(re - (dvRe[b] as number)) + Math.abs(im - (dvIm[b] as number)));
        scale = Math.max(scale, Math.abs(re) + Math.abs(im));
        dvRe[b] = re;
        dvIm[b] = im;
      }
      if (change <= 1e-12 * scale || scale === 0) return;
      if (iteration >= 500 || !Number.isFinite(change)) {
        throw new Error(
          `sensitivities of feeder ${this.feeder.name} did not converge for bus ${this.feeder.buses[bus]?.name}; ` +
            'the operating point is too close to voltage collapse for a linear model',
        );
      }
    }
  }

  /** Writes the last solve into column `col`, per kW (or kvar). */
  write(col: number, dV: Matrix, dI: Matrix, share: Matrix, kind: 'p' | 'q'): void {
    const { n, parent, parentLine, dvRe, dvIm, djRe, djIm, unit } = this;
    const { vRe, vIm, jRe, jIm } = this.solution.state;
    const iBase = this.feeder.iBaseA;
    for (let b = 0; b < n; b++) {
      const vr = vRe[b] as number;
      const vi = vIm[b] as number;
      dV.set(b, col, (vr * (dvRe[b] as number) + vi * (dvIm[b] as number)) / Math.hypot(vr, vi));
      const line = parentLine[b] as number;
      if (line < 0) continue;
      const jr = jRe[b] as number;
      const ji = jIm[b] as number;
      const dr = djRe[b] as number;
      const di = djIm[b] as number;
      const magnitude = Math.hypot(jr, ji);
      dI.set(line, col, (magnitude > 0 ? (jr * dr + ji * di) / magnitude : Math.hypot(dr, di)) * iBase);
      // S_up = V_parent·conj(J): dS = dV_parent·conj(J) + V_parent·conj(dJ).
      const a = parent[b] as number;
      const par = vRe[a] as number;
      const pai = vIm[a] as number;
      const dpr = dvRe[a] as number;
      const dpi = dvIm[a] as number;
      const dsRe = dpr * jr + dpi * ji + (par * dr + pai * di);
      const dsIm = dpi * jr - dpr * ji + (pai * dr - par * di);
      share.set(line, col, (kind === 'p' ? dsRe : dsIm) / unit);
    }
  }
}
