/**
 * A linear program as plain arrays: the one shape the formulation builds, the solver worker receives (structured
 * clone of typed arrays, cheap), the LP-file writer prints and tests inspect. Minimization only; rows are ranges
 * `lower <= a·x <= upper` stored row-wise (CSR). Names follow the CPLEX LP rules both HiGHS and glpsol read.
 */

export interface LinearProgram {
  readonly name: string;
  /** Constant added to the objective (committed costs that no decision changes). */
  readonly offset: number;
  readonly colNames: readonly string[];
  readonly colLower: Float64Array;
  readonly colUpper: Float64Array;
  readonly colCost: Float64Array;
  /** 1 for a binary/integer column, 0 for continuous. */
  readonly integrality: Uint8Array;
  readonly rowNames: readonly string[];
  readonly rowLower: Float64Array;
  readonly rowUpper: Float64Array;
  /** CSR: row i's entries are index/value[rowStart[i] .. rowStart[i+1]). */
  readonly rowStart: Int32Array;
  readonly index: Int32Array;
  readonly value: Float64Array;
}

export type LpStatus = 'optimal' | 'infeasible' | 'unbounded' | 'time-limit' | 'error';

export interface LpResult {
  readonly status: LpStatus;
  /** Objective including the offset; NaN unless optimal (or time-limit with a feasible point). */
  readonly objective: number;
  /** Column values (empty unless a solution exists). */
  readonly colValue: Float64Array;
  /** Row duals (marginal objective change per unit of row activity), LP only; empty for a MIP. */
  readonly rowDual: Float64Array;
  /** Wall time inside the solver, ms. */
  readonly solveMs: number;
  /** For status infeasible when asked: the rows and columns of an irreducible infeasible subsystem. */
  readonly iis?: { readonly rows: readonly number[]; readonly cols: readonly number[] };
  /** Solver's words when status is error. */
  readonly message?: string;
}

export class LpError extends Error {
  override name = 'LpError';
}

/** Limits and extras for one solve. */
export interface SolveOptions {
  /** Stop after this many seconds of solver time; the best point found so far comes back as 'time-limit'. */
  readonly timeLimitSeconds?: number;
  /** When infeasible, find an irreducible infeasible subsystem (LpResult.iis). */
  readonly iis?: boolean;
  /** MIP only: stop when the gap between the best point and the bound is below this fraction (HiGHS default 1e-4). */
  readonly mipRelGap?: number;
}

/** Changes to a base LP for one re-solve (price points, scenarios); everything else stays as in the base. */
export interface LpVariant {
  readonly colBounds?: readonly { readonly col: number; readonly lower: number; readonly upper: number }[];
  readonly colCosts?: readonly { readonly col: number; readonly cost: number }[];
}

/** The outcome of one variant: only the columns asked for, in the order asked. */
export interface VariantResult {
  readonly status: LpStatus;
  /** Objective including the offset; NaN without a solution. */
  readonly objective: number;
  /** Values of the reported columns; NaN without a solution. */
  readonly values: Float64Array;
  /** Solver's words when status is error. */
  readonly message?: string;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.]{0,254}$/;

// Section keywords of the CPLEX LP format as HiGHS reads them, and "free": HiGHS's reader takes such a column name for
// the keyword, fails, and its WASM build aborts.
const LP_KEYWORDS = new Set([
  ...'minimize min minimum maximize max maximum st s.t. bounds bound'.split(' '),
  ...'binary binaries bin general generals gen semi semis sos end free'.split(' '),
]);

/**
 * Why `name` cannot stand in an LP file that both HiGHS and glpsol read, or undefined when it can. Besides the
 * character rules: HiGHS reads any name starting with "inf" or "nan" as a number (C strtod: "inflow" is infinity
 * followed by "low") and the section keywords as keywords; it then fails to read the file, usually by aborting its
 * WASM runtime (measured with highs 1.15; glpsol reads them all).
 */
export function cplexNameProblem(name: string): string | undefined {
  if (!NAME_RE.test(name)) return 'must be a letter or _ then letters, digits, _ or . (at most 255 characters)';
  if (/^(inf|nan)/i.test(name)) return 'must not start with "inf" or "nan" (HiGHS reads those as numbers)';
  if (LP_KEYWORDS.has(name.toLowerCase())) return 'is a keyword of the CPLEX LP format';
  return undefined;
}

/** Builds a LinearProgram column by column and row by row; names are checked once here. */
export class LpBuilder {
  private readonly colNames: string[] = [];
  private readonly colLower: number[] = [];
  private readonly colUpper: number[] = [];
  private readonly colCost: number[] = [];
  private readonly integrality: number[] = [];
  private readonly rowNames: string[] = [];
  private readonly rowLower: number[] = [];
  private readonly rowUpper: number[] = [];
  private readonly rowStart: number[] = [0];
  private readonly index: number[] = [];
  private readonly value: number[] = [];
  private readonly names = new Set<string>();
  private offset = 0;

  constructor(private readonly name: string) {}

  get columns(): number {
    return this.colNames.length;
  }

  get rows(): number {
    return this.rowNames.length;
  }

  /** Adds a column; returns its index. `upper` may be Infinity, `lower` -Infinity. */
  addColumn(name: string, lower: number, upper: number, cost = 0, integer = false): number {
    this.checkName(name);
    if (Number.isNaN(lower) || Number.isNaN(upper) || !Number.isFinite(cost)) {
      throw new LpError(`column ${name}: bounds and cost must be numbers (got ${lower}, ${upper}, ${cost})`);
    }
    if (lower > upper) throw new LpError(`column ${name}: lower bound ${lower} is above upper bound ${upper}`);
    this.colNames.push(name);
    this.colLower.push(lower);
    this.colUpper.push(upper);
    this.colCost.push(cost);
    this.integrality.push(integer ? 1 : 0);
    return this.colNames.length - 1;
  }

  /** Adds `lower <= Σ coef·x[col] <= upper`; duplicate columns are summed. Returns the row index. */
  addRow(name: string, lower: number, upper: number, terms: readonly (readonly [number, number])[]): number {
    this.checkName(name);
    if (Number.isNaN(lower) || Number.isNaN(upper)) throw new LpError(`row ${name}: bounds must be numbers`);
    const merged = new Map<number, number>();
    for (const [col, coef] of terms) {
      if (!Number.isInteger(col) || col < 0 || col >= this.colNames.length) {
        throw new LpError(`row ${name}: column index ${col} does not exist`);
      }
      if (!Number.isFinite(coef)) throw new LpError(`row ${name}: coefficient of ${this.colNames[col]} is ${coef}`);
      merged.set(col, (merged.get(col) ?? 0) + coef);
    }
    for (const [col, coef] of [...merged].sort((a, b) => a[0] - b[0])) {
      if (coef === 0) continue;
      this.index.push(col);
      this.value.push(coef);
    }
    this.rowNames.push(name);
    this.rowLower.push(lower);
    this.rowUpper.push(upper);
    this.rowStart.push(this.index.length);
    return this.rowNames.length - 1;
  }

  addOffset(amount: number): void {
    if (!Number.isFinite(amount)) throw new LpError(`objective offset must be finite, got ${amount}`);
    this.offset += amount;
  }

  build(): LinearProgram {
    return {
      name: this.name,
      offset: this.offset,
      colNames: [...this.colNames],
      colLower: Float64Array.from(this.colLower),
      colUpper: Float64Array.from(this.colUpper),
      colCost: Float64Array.from(this.colCost),
      integrality: Uint8Array.from(this.integrality),
      rowNames: [...this.rowNames],
      rowLower: Float64Array.from(this.rowLower),
      rowUpper: Float64Array.from(this.rowUpper),
      rowStart: Int32Array.from(this.rowStart),
      index: Int32Array.from(this.index),
      value: Float64Array.from(this.value),
    };
  }

  private checkName(name: string): void {
    const problem = cplexNameProblem(name);
    if (problem !== undefined) throw new LpError(`LP name ${JSON.stringify(name)} ${problem} (CPLEX LP)`);
    if (this.names.has(name)) throw new LpError(`LP name ${name} is used twice`);
    this.names.add(name);
  }
}

/** True when the program has at least one integer column (solved as a MILP: no duals). */
export function isMip(lp: LinearProgram): boolean {
  return lp.integrality.some((v) => v !== 0);
}

/** Σ cost·x + offset for a column vector: the objective recomputed outside any solver. */
export function evaluateObjective(lp: LinearProgram, x: ArrayLike<number>): number {
  let total = lp.offset;
  for (let j = 0; j < lp.colCost.length; j++) total += (lp.colCost[j] ?? 0) * (x[j] ?? 0);
  return total;
}

/** Largest violation of any bound or row by `x` (0 when feasible), with where it is. */
export function maxViolation(lp: LinearProgram, x: ArrayLike<number>): { amount: number; where: string } {
  let worst = { amount: 0, where: '' };
  const note = (amount: number, where: string) => {
    if (amount > worst.amount) worst = { amount, where };
  };
  for (let j = 0; j < lp.colNames.length; j++) {
    const v = x[j] ?? 0;
    note((lp.colLower[j] ?? 0) - v, `column ${lp.colNames[j]} below its lower bound`);
    note(v - (lp.colUpper[j] ?? 0), `column ${lp.colNames[j]} above its upper bound`);
  }
  for (let i = 0; i < lp.rowNames.length; i++) {
    let activity = 0;
    for (let k = lp.rowStart[i] ?? 0; k < (lp.rowStart[i + 1] ?? 0); k++) {
      activity += (lp.value[k] ?? 0) * (x[lp.index[k] ?? 0] ?? 0);
    }
    note((lp.rowLower[i] ?? 0) - activity, `row ${lp.rowNames[i]} below its lower bound`);
    note(activity - (lp.rowUpper[i] ?? 0), `row ${lp.rowNames[i]} above its upper bound`);
  }
  return worst;
}

/**
 * What is wrong with the arrays of `lp` (lengths, CSR structure, indices, NaN or impossible bounds), or undefined when
 * they are consistent. LpBuilder always builds consistent programs; this guards programs assembled by hand or
 * changed after building, before they reach a solver or a file.
 */
export function lpShapeProblem(lp: LinearProgram): string | undefined {
  const n = lp.colNames.length;
  const m = lp.rowNames.length;
  const where = `LP ${lp.name}`;
  for (const [key, arr] of [
    ['colLower', lp.colLower],
    ['colUpper', lp.colUpper],
    ['colCost', lp.colCost],
    ['integrality', lp.integrality],
  ] as const) {
    if (arr.length !== n) return `${where}: ${key} has ${arr.length} entries for ${n} columns`;
  }
  for (const [key, arr] of [
    ['rowLower', lp.rowLower],
    ['rowUpper', lp.rowUpper],
  ] as const) {
    if (arr.length !== m) return `${where}: ${key} has ${arr.length} entries for ${m} rows`;
  }
  if (lp.rowStart.length !== m + 1) return `${where}: rowStart has ${lp.rowStart.length} entries, expected ${m + 1}`;
  if (lp.rowStart[0] !== 0) return `${where}: rowStart[0] is ${lp.rowStart[0]}, expected 0`;
  const nnz = lp.index.length;
  if (lp.value.length !== nnz) return `${where}: index has ${nnz} entries but value has ${lp.value.length}`;
  if (lp.rowStart[m] !== nnz) return `${where}: rowStart ends at ${lp.rowStart[m]} but there are ${nnz} entries`;
  if (!Number.isFinite(lp.offset)) return `${where}: offset is ${lp.offset}`;
  for (let j = 0; j < n; j++) {
    const lo = lp.colLower[j] ?? 0;
    const hi = lp.colUpper[j] ?? 0;
    if (Number.isNaN(lo) || Number.isNaN(hi) || lo === Number.POSITIVE_INFINITY || hi === Number.NEGATIVE_INFINITY) {
      return `${where}: column ${lp.colNames[j]} has bounds [${lo}, ${hi}]`;
    }
    if (!Number.isFinite(lp.colCost[j] ?? 0)) return `${where}: column ${lp.colNames[j]} has cost ${lp.colCost[j]}`;
  }
  const seen = new Int32Array(n).fill(-1);
  for (let i = 0; i < m; i++) {
    const lo = lp.rowLower[i] ?? 0;
    const hi = lp.rowUpper[i] ?? 0;
    if (Number.isNaN(lo) || Number.isNaN(hi) || lo === Number.POSITIVE_INFINITY || hi === Number.NEGATIVE_INFINITY) {
      return `${where}: row ${lp.rowNames[i]} has bounds [${lo}, ${hi}]`;
    }
    const start = lp.rowStart[i] ?? 0;
    const end = lp.rowStart[i + 1] ?? 0;
    if (end < start) return `${where}: rowStart decreases at row ${lp.rowNames[i]}`;
    for (let k = start; k < end; k++) {
      const col = lp.index[k] ?? -1;
      if (!(col >= 0 && col < n)) return `${where}: row ${lp.rowNames[i]} refers to column index ${col} of ${n}`;
      if (seen[col] === i) return `${where}: row ${lp.rowNames[i]} lists column ${lp.colNames[col]} twice`;
      seen[col] = i;
      if (!Number.isFinite(lp.value[k] ?? 0)) {
        return `${where}: row ${lp.rowNames[i]} has coefficient ${lp.value[k]} for ${lp.colNames[col]}`;
      }
    }
  }
  return undefined;
}
