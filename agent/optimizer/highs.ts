/**
 * HiGHS (the `highs` WASM package) behind one small engine: a LinearProgram in, an LpResult out. The only module that
 * imports `highs`. Every call is synchronous and creates and disposes its own HiGHS model (WASM memory is never
 * returned to the system, so a leaked model grows the process for good); the loaded runtime is reused.
 */
import highsPackage, { type Highs, type InitOptions, type Model, type ModelData, type ModelStatusCode } from 'highs';
import {
  isMip,
  type LinearProgram,
  LpError,
  type LpResult,
  type LpStatus,
  type LpVariant,
  lpShapeProblem,
  type SolveOptions,
  type VariantResult,
} from './lp.js';

export type { LpVariant, SolveOptions, VariantResult };

/** A solve of CPLEX LP text: the result in HiGHS's column order, and the names in that order. */
export interface LpTextResult {
  readonly result: LpResult;
  readonly colNames: readonly string[];
}

export interface HighsEngine {
  /** HiGHS version inside the WASM build, e.g. "1.15.1". */
  readonly version: string;
  /**
   * Set once the WASM runtime has aborted (a C++ exception inside HiGHS): nothing more can be solved with this
   * engine; load a new one.
   */
  readonly broken: string | undefined;
  /** Solves one program. Never throws: bad input and solver failures come back as status 'error' with a message. */
  solve(lp: LinearProgram, options?: SolveOptions): LpResult;
  /**
   * Loads `lp` once and solves it once per variant (each variant's changes applied to the base, then undone, so the
   * next solve starts from the previous basis), reporting the values of `reportCols`. Throws LpError for a variant
   * or report column that does not exist; solver failures come back as status 'error'.
   */
  solveVariants(
    lp: LinearProgram,
    variants: readonly LpVariant[],
    reportCols: readonly number[],
    options?: SolveOptions,
  ): VariantResult[];
  /**
   * Reads CPLEX LP text with HiGHS's own reader and solves it (to check an exported file). HiGHS's reader aborts the
   * WASM runtime on some names (see cplexNameProblem in lp.ts); the engine is then `broken`.
   */
  solveLpText(text: string, options?: SolveOptions): LpTextResult;
  /** HiGHS models created and not yet disposed: 0 between calls. */
  openModels(): number;
  /** Size of the WASM linear memory, bytes (it only grows). */
  memoryBytes(): number;
}

const MODEL_STATUS_NAMES: Record<number, string> = {
  0: 'not set',
  1: 'load error',
  2: 'model error',
  3: 'presolve error',
  4: 'solve error',
  5: 'postsolve error',
  6: 'empty model',
  7: 'optimal',
  8: 'infeasible',
  9: 'unbounded or infeasible',
  10: 'unbounded',
  11: 'objective bound reached',
  12: 'objective target reached',
  13: 'time limit reached',
  14: 'iteration limit reached',
  15: 'unknown',
  16: 'solution limit reached',
  17: 'interrupted',
};

const STATUS_OPTIMAL = 7;
const STATUS_INFEASIBLE = 8;
const STATUS_UNBOUNDED_OR_INFEASIBLE = 9;
const STATUS_UNBOUNDED = 10;
const STATUS_TIME_LIMIT = 13;
const SOLUTION_FEASIBLE = 2;
/** iis_strategy "row priority": the default ("light") finds no IIS at all for a plain infeasible LP (measured). */
const IIS_ROW_PRIORITY = 6;
/** Native log lines kept for error messages. */
const LOG_LINES = 40;

/** Loads the WASM runtime (~70 ms) and returns an engine; keep it for the life of the process. */
export async function loadHighsEngine(): Promise<HighsEngine> {
  const log: string[] = [];
  const keep = (line: string) => {
    log.push(line);
    if (log.length > LOG_LINES) log.shift();
  };
  let highs: Highs;
  try {
    highs = await highsLoader()({ print: keep, printErr: keep });
  } catch (error) {
    throw new Error(`could not load the HiGHS solver (WASM): ${messageOf(error)}`);
  }
  return new Engine(highs, log);
}

type Loader = (options?: InitOptions) => Promise<Highs>;

/**
 * The package's types describe a CommonJS module whose `default` property is the loader, while Node's ESM loader
 * (build/highs.mjs) hands out the loader itself as the default export: accept both.
 */
function highsLoader(): Loader {
  const imported = highsPackage as unknown as Loader | { readonly default: Loader };
  return typeof imported === 'function' ? imported : imported.default;
}

class Engine implements HighsEngine {
  readonly version: string;
  broken: string | undefined;
  private open = 0;

  constructor(
    private readonly highs: Highs,
    private readonly log: string[],
  ) {
    this.version = highs.version.string;
  }

  openModels(): number {
    return this.open;
  }

  memoryBytes(): number {
    return this.highs.memoryBytes;
  }

  solve(lp: LinearProgram, options: SolveOptions = {}): LpResult {
    const t0 = performance.now();
    const unusable = this.unusable(lp);
    if (unusable !== undefined) return errorResult(unusable, t0);
    if (lp.colNames.length === 0) return emptyResult(lp, t0);
    const mip = isMip(lp);
    let model: Model | undefined;
    try {
      model = this.createModel(options, mip);
      this.pass(model, lp, options, mip);
      const status = this.run(model);
      return this.collect(model, status, mip, options, t0);
    } catch (error) {
      return errorResult(this.describe(error, `LP ${lp.name}`), t0);
    } finally {
      this.dispose(model);
    }
  }

  solveVariants(
    lp: LinearProgram,
    variants: readonly LpVariant[],
    reportCols: readonly number[],
    options: SolveOptions = {},
  ): VariantResult[] {
    const n = lp.colNames.length;
    const checkCol = (col: number, what: string) => {
      if (!Number.isInteger(col) || col < 0 || col >= n) {
        throw new LpError(`LP ${lp.name}: ${what} refers to column ${col}, but the LP has columns 0..${n - 1}`);
      }
    };
    for (const [k, col] of reportCols.entries()) checkCol(col, `report column #${k}`);
    variants.forEach((v, k) => {
      for (const b of v.colBounds ?? []) checkCol(b.col, `variant #${k}`);
      for (const c of v.colCosts ?? []) checkCol(c.col, `variant #${k}`);
    });
    const failAll = (message: string): VariantResult[] =>
      variants.map(() => ({
        status: 'error',
        objective: Number.NaN,
        values: new Float64Array(reportCols.length).fill(Number.NaN),
        message,
      }));
    const unusable = this.unusable(lp) ?? (n === 0 ? `LP ${lp.name} has no columns` : undefined);
    if (unusable !== undefined) return failAll(unusable);
    const mip = isMip(lp);
    let model: Model | undefined;
    try {
      model = this.createModel(options, mip);
      this.pass(model, lp, options, mip);
    } catch (error) {
      this.dispose(model);
      return failAll(this.describe(error, `LP ${lp.name}`));
    }
    const results: VariantResult[] = [];
    try {
      for (const [k, variant] of variants.entries()) {
        if (this.broken !== undefined) {
          results.push(...failAll(this.broken).slice(k));
          break;
        }
        try {
          for (const b of variant.colBounds ?? []) model.changeColBounds(b.col, b.lower, b.upper);
          for (const c of variant.colCosts ?? []) model.changeColCost(c.col, c.cost);
          const status = this.run(model);
          const result = this.collect(model, status, mip, {}, performance.now());
          const values = new Float64Array(reportCols.length).fill(Number.NaN);
          if (result.colValue.length > 0) {
            for (const [i, col] of reportCols.entries()) values[i] = result.colValue[col] ?? 0;
          }
          results.push({
            status: result.status,
            objective: result.objective,
            values,
            ...(result.message === undefined ? {} : { message: result.message }),
          });
        } catch (error) {
          results.push({ ...failAll('')[0]!, message: this.describe(error, `LP ${lp.name}, variant #${k}`) });
        } finally {
          // Back to the base program, so variant k+1 is relative to the base and not to variant k.
          if (this.broken === undefined) {
            for (const b of variant.colBounds ?? []) {
              model.changeColBounds(b.col, lp.colLower[b.col] ?? 0, lp.colUpper[b.col] ?? 0);
            }
            for (const c of variant.colCosts ?? []) model.changeColCost(c.col, lp.colCost[c.col] ?? 0);
          }
        }
      }
    } catch (error) {
      // Undoing a change failed: the model no longer matches the base, so the remaining variants cannot be trusted.
      results.push(...failAll(this.describe(error, `LP ${lp.name}`)).slice(results.length));
    } finally {
      this.dispose(model);
    }
    return results;
  }

  solveLpText(text: string, options: SolveOptions = {}): LpTextResult {
    const t0 = performance.now();
    if (this.broken !== undefined) return { result: errorResult(this.broken, t0), colNames: [] };
    let model: Model | undefined;
    try {
      model = this.createModel(options, false);
      this.log.length = 0;
      try {
        model.readModel({ format: 'lp', data: text });
      } catch (error) {
        if (isAbort(error)) throw error;
        throw new Error(`HiGHS could not read the LP text: ${this.nativeWords() ?? messageOf(error)}`);
      }
      const dims = model.getDimensions();
      const colNames = Array.from({ length: dims.numCols }, (_, j) => model!.getColName(j));
      const mip = model.getLp().integrality.some((v) => v !== 0);
      if (mip && options.mipRelGap !== undefined) model.options.set('mip_rel_gap', options.mipRelGap);
      const status = this.run(model);
      return { result: this.collect(model, status, mip, options, t0), colNames };
    } catch (error) {
      return { result: errorResult(this.describe(error, 'LP text'), t0), colNames: [] };
    } finally {
      this.dispose(model);
    }
  }

  private unusable(lp: LinearProgram): string | undefined {
    return this.broken ?? lpShapeProblem(lp);
  }

  private createModel(options: SolveOptions, mip: boolean): Model {
    const model = this.highs.createModel();
    this.open++;
    const settings: Record<string, number | boolean | string> = { output_flag: false };
    if (options.timeLimitSeconds !== undefined) settings.time_limit = options.timeLimitSeconds;
    if (mip && options.mipRelGap !== undefined) settings.mip_rel_gap = options.mipRelGap;
    model.options.set(settings);
    return model;
  }

  private dispose(model: Model | undefined): void {
    if (model === undefined || model.disposed) return;
    try {
      model.dispose();
    } catch {
      // A model of an aborted runtime cannot be destroyed; the runtime is lost anyway (broken).
    }
    this.open--;
  }

  private pass(model: Model, lp: LinearProgram, options: SolveOptions, mip: boolean): void {
    const data = modelData(lp, mip);
    try {
      model.passModel(data);
    } catch (error) {
      // With output off HiGHS says nothing; load it once more into a scratch model with output on to get its words.
      if (this.broken !== undefined || !isHighsStatusError(error)) throw error;
      throw new Error(`HiGHS refused LP ${lp.name}: ${this.explainPass(data, options, mip) ?? messageOf(error)}`);
    }
  }

  private explainPass(data: ModelData, options: SolveOptions, mip: boolean): string | undefined {
    let scratch: Model | undefined;
    try {
      scratch = this.createModel(options, mip);
      scratch.options.set({ output_flag: true });
      this.log.length = 0;
      scratch.passModel(data);
      return undefined;
    } catch {
      return this.nativeWords();
    } finally {
      this.dispose(scratch);
    }
  }

  /** HiGHS's own error lines from the captured native output. */
  private nativeWords(): string | undefined {
    const errors = this.log.filter((line) => /error/i.test(line)).map((line) => line.trim());
    return errors.length > 0 ? errors.join('; ') : undefined;
  }

  private run(model: Model): ModelStatusCode {
    let status = model.run().modelStatus;
    if (status === STATUS_UNBOUNDED_OR_INFEASIBLE) {
      // Presolve often cannot tell the two apart; the simplex on the original problem can.
      const presolve = model.options.get('presolve');
      model.options.set('presolve', 'off');
      try {
        status = model.run().modelStatus;
      } finally {
        model.options.set('presolve', presolve);
      }
    }
    return status;
  }

  private collect(model: Model, status: ModelStatusCode, mip: boolean, options: SolveOptions, t0: number): LpResult {
    const empty = new Float64Array(0);
    const primal = () => {
      const solution = model.getSolution();
      return { colValue: solution.colValue, rowDual: mip ? empty : solution.rowDual };
    };
    const done = (fields: Omit<LpResult, 'solveMs'>): LpResult => ({ ...fields, solveMs: performance.now() - t0 });
    switch (status) {
      case STATUS_OPTIMAL: {
        const { colValue, rowDual } = primal();
        return done({ status: 'optimal', objective: model.getObjectiveValue(), colValue, rowDual });
      }
      case STATUS_TIME_LIMIT: {
        if (model.info.get('primal_solution_status') !== SOLUTION_FEASIBLE) {
          return done({ status: 'time-limit', objective: Number.NaN, colValue: empty, rowDual: empty });
        }
        // A MIP's incumbent: feasible, maybe not optimal. An LP stopped early has no valid duals.
        const { colValue } = primal();
        return done({ status: 'time-limit', objective: model.getObjectiveValue(), colValue, rowDual: empty });
      }
      case STATUS_INFEASIBLE:
      case STATUS_UNBOUNDED_OR_INFEASIBLE: {
        const iis = options.iis ? this.iis(model) : undefined;
        return done({
          status: 'infeasible',
          objective: Number.NaN,
          colValue: empty,
          rowDual: empty,
          ...(iis === undefined ? {} : { iis }),
          ...(status === STATUS_UNBOUNDED_OR_INFEASIBLE
            ? { message: 'HiGHS could not tell infeasible from unbounded, even without presolve' }
            : {}),
        });
      }
      case STATUS_UNBOUNDED:
        return done({ status: 'unbounded', objective: Number.NaN, colValue: empty, rowDual: empty });
      default: {
        const name = MODEL_STATUS_NAMES[status] ?? `status ${status}`;
        const words = this.nativeWords();
        return done({
          status: 'error',
          objective: Number.NaN,
          colValue: empty,
          rowDual: empty,
          message: `HiGHS stopped with model status "${name}"${words === undefined ? '' : `: ${words}`}`,
        });
      }
    }
  }

  private iis(model: Model): LpResult['iis'] {
    try {
      model.options.set('iis_strategy', IIS_ROW_PRIORITY);
      const found = model.getIis();
      return { rows: Array.from(found.rowIndex), cols: Array.from(found.colIndex) };
    } catch {
      // No IIS is not a failure of the solve: the caller still learns "infeasible", just without the rows to blame.
      return undefined;
    }
  }

  /** Words for a failure; marks the engine broken when the WASM runtime itself aborted. */
  private describe(error: unknown, where: string): string {
    if (isAbort(error)) {
      this.broken = `the HiGHS WASM runtime aborted (${messageOf(error)}) while solving ${where}; load a new engine`;
      return this.broken;
    }
    return `${where}: ${messageOf(error)}`;
  }
}

function modelData(lp: LinearProgram, mip: boolean): ModelData {
  const numCols = lp.colNames.length;
  const numRows = lp.rowNames.length;
  return {
    numCols,
    numRows,
    offset: lp.offset,
    colCost: lp.colCost,
    colLower: lp.colLower,
    colUpper: lp.colUpper,
    rowLower: lp.rowLower,
    rowUpper: lp.rowUpper,
    matrix: { format: 'csr', numRows, numCols, starts: lp.rowStart, indices: lp.index, values: lp.value },
    // Without integrality HiGHS solves an LP and returns duals; with it, a MIP.
    ...(mip ? { integrality: Int32Array.from(lp.integrality) as Int32Array } : {}),
    colNames: lp.colNames,
    rowNames: lp.rowNames,
    modelName: lp.name,
  };
}

/** A program without columns: nothing to decide; feasible when every (empty) row admits activity 0. */
function emptyResult(lp: LinearProgram, t0: number): LpResult {
  const empty = new Float64Array(0);
  const feasible = lp.rowNames.every((_, i) => (lp.rowLower[i] ?? 0) <= 0 && (lp.rowUpper[i] ?? 0) >= 0);
  return {
    status: feasible ? 'optimal' : 'infeasible',
    objective: feasible ? lp.offset : Number.NaN,
    colValue: empty,
    rowDual: feasible && !isMip(lp) ? new Float64Array(lp.rowNames.length) : empty,
    solveMs: performance.now() - t0,
  };
}

function errorResult(message: string, t0: number): LpResult {
  const empty = new Float64Array(0);
  return {
    status: 'error' satisfies LpStatus,
    objective: Number.NaN,
    colValue: empty,
    rowDual: empty,
    solveMs: performance.now() - t0,
    message,
  };
}

/** A C++ exception or abort() inside the WASM build: the runtime is dead after it. */
function isAbort(error: unknown): boolean {
  return (error instanceof Error && error.name === 'RuntimeError') || /Aborted\(/.test(messageOf(error));
}

function isHighsStatusError(error: unknown): boolean {
  return error instanceof Error && (error as { status?: unknown }).status === -1;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
