import { beforeAll, describe, expect, it } from 'vitest';
import { type HighsEngine, loadHighsEngine } from '../../../agent/optimizer/highs.js';
import {
  evaluateObjective,
  type LinearProgram,
  LpBuilder,
  LpError,
  type LpVariant,
  maxViolation,
} from '../../../agent/optimizer/lp.js';

const INF = Number.POSITIVE_INFINITY;

let engine: HighsEngine;
beforeAll(async () => {
  engine = await loadHighsEngine();
});

/** min x + 2y  s.t.  need: x + y >= 2,  cap: x <= 1.5; optimum x = 1.5, y = 0.5; duals 2 and -1. */
function dualLp(offset = 0): LinearProgram {
  const b = new LpBuilder('duals');
  const x = b.addColumn('x', 0, INF, 1);
  const y = b.addColumn('y', 0, INF, 2);
  b.addRow('need', 2, INF, [
    [x, 1],
    [y, 1],
  ]);
  b.addRow('cap', -INF, 1.5, [[x, 1]]);
  b.addOffset(offset);
  return b.build();
}

/** x + y >= 5 and x + y <= 3 conflict; `spare` (x - y <= 10) and the bounds take no part. */
function infeasibleLp(integer = false): LinearProgram {
  const b = new LpBuilder('conflict');
  const x = b.addColumn('x', 0, INF, 1, integer);
  const y = b.addColumn('y', 0, INF, 1);
  b.addRow('spare', -INF, 10, [
    [x, 1],
    [y, -1],
  ]);
  b.addRow('at_least_5', 5, INF, [
    [x, 1],
    [y, 1],
  ]);
  b.addRow('at_most_3', -INF, 3, [
    [x, 1],
    [y, 1],
  ]);
  return b.build();
}

/** min -x with x - y >= 0 and nothing bounding x from above. */
function unboundedLp(integer = false): LinearProgram {
  const b = new LpBuilder('unbounded');
  const x = b.addColumn('x', 0, INF, -1, integer);
  const y = b.addColumn('y', 0, INF, 0);
  b.addRow('r', 0, INF, [
    [x, 1],
    [y, -1],
  ]);
  return b.build();
}

/** Knapsack-like MIP: max 5a + 4b + 3c with 2a + 3b + c <= 5, 4a + b + 2c <= 11, 3a + 4b + 2c <= 8; optimum 13. */
function mipLp(): LinearProgram {
  const b = new LpBuilder('mip');
  const a = b.addColumn('a', 0, 10, -5, true);
  const bb = b.addColumn('b', 0, 10, -4, true);
  const c = b.addColumn('c', 0, 10, -3, true);
  b.addRow('r1', -INF, 5, [
    [a, 2],
    [bb, 3],
    [c, 1],
  ]);
  b.addRow('r2', -INF, 11, [
    [a, 4],
    [bb, 1],
    [c, 2],
  ]);
  b.addRow('r3', -INF, 8, [
    [a, 3],
    [bb, 4],
    [c, 2],
  ]);
  return b.build();
}

/** A transport-like LP with several near-equal costs: variants that move bounds and costs change the answer. */
function transportLp(): LinearProgram {
  const b = new LpBuilder('transport');
  const supply = [30, 25, 45];
  const demand = [20, 30, 25, 25];
  const cost = [
    [8, 6, 10, 9],
    [9, 12, 13, 7],
    [14, 9, 16, 5],
  ];
  const x: number[][] = supply.map((_, i) => demand.map((_, j) => b.addColumn(`x_${i}_${j}`, 0, INF, cost[i]![j]!)));
  supply.forEach((s, i) => {
    b.addRow(
      `supply_${i}`,
      -INF,
      s,
      x[i]!.map((col) => [col, 1] as const),
    );
  });
  demand.forEach((d, j) => {
    b.addRow(
      `demand_${j}`,
      d,
      d,
      x.map((row) => [row[j]!, 1] as const),
    );
  });
  b.addOffset(100);
  return b.build();
}

/** The program with a variant's changes applied, for solving from scratch. */
function applied(lp: LinearProgram, v: LpVariant): LinearProgram {
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

describe('HighsEngine.solve', () => {
  it('finds the optimum with the offset in the objective and the row duals of an LP', () => {
    const lp = dualLp(10);
    const r = engine.solve(lp);
    expect(r.status).toBe('optimal');
    expect(r.objective).toBeCloseTo(10 + 1.5 + 2 * 0.5, 12);
    expect([...r.colValue]).toEqual([1.5, 0.5]);
    // One more unit of `need` costs one more y (2); one more unit of `cap` swaps a y for an x (-1).
    expect(r.rowDual[0]).toBeCloseTo(2, 12);
    expect(r.rowDual[1]).toBeCloseTo(-1, 12);
    expect(r.solveMs).toBeGreaterThanOrEqual(0);
    expect(r.message).toBeUndefined();
    expect(evaluateObjective(lp, r.colValue)).toBeCloseTo(r.objective, 12);
  });

  it('solves a MIP to its integer optimum and gives no duals', () => {
    const lp = mipLp();
    const r = engine.solve(lp);
    expect(r.status).toBe('optimal');
    expect(r.objective).toBeCloseTo(-13, 9);
    expect(r.rowDual.length).toBe(0);
    expect(maxViolation(lp, r.colValue).amount).toBeLessThan(1e-9);
    for (const v of r.colValue) expect(Math.abs(v - Math.round(v))).toBeLessThan(1e-9);
  });

  it('maps infeasible, unbounded and unbounded-or-infeasible to their statuses', () => {
    for (const lp of [infeasibleLp(), infeasibleLp(true)]) {
      const r = engine.solve(lp);
      expect(r.status).toBe('infeasible');
      expect(r.objective).toBeNaN();
      expect(r.colValue.length).toBe(0);
      expect(r.iis).toBeUndefined();
    }
    expect(engine.solve(unboundedLp()).status).toBe('unbounded');
    // HiGHS's MIP presolve says "unbounded or infeasible" here; the engine asks again without presolve.
    expect(engine.solve(unboundedLp(true)).status).toBe('unbounded');
  });

  it('names the rows of an irreducible infeasible subsystem when asked', () => {
    const lp = infeasibleLp();
    const r = engine.solve(lp, { iis: true });
    expect(r.status).toBe('infeasible');
    expect(r.iis?.rows.map((i) => lp.rowNames[i]).sort()).toEqual(['at_least_5', 'at_most_3']);
  });

  it('names a column whose bound conflicts with a row', () => {
    const b = new LpBuilder('bound_conflict');
    const x = b.addColumn('x', 0, 2, 1);
    const y = b.addColumn('y', 0, 2, 1);
    const z = b.addColumn('z', 0, 100, 1);
    b.addRow('need_5', 5, INF, [
      [x, 1],
      [y, 1],
    ]);
    b.addRow('other', 0, 50, [[z, 1]]);
    const lp = b.build();
    const r = engine.solve(lp, { iis: true });
    expect(r.status).toBe('infeasible');
    expect(r.iis?.rows.map((i) => lp.rowNames[i])).toEqual(['need_5']);
    expect(r.iis?.cols.map((j) => lp.colNames[j]).sort()).toEqual(['x', 'y']);
  });

  it('solves a program without rows, and one without columns', () => {
    const b = new LpBuilder('no_rows');
    b.addColumn('x', -2, 3, 1);
    b.addColumn('y', -2, 3, -1);
    b.addOffset(1);
    const r = engine.solve(b.build());
    expect(r.status).toBe('optimal');
    expect(r.objective).toBe(1 - 2 - 3);
    expect([...r.colValue]).toEqual([-2, 3]);

    const none = new LpBuilder('nothing');
    none.addOffset(4);
    none.addRow('zero_ok', -1, 1, []);
    expect(engine.solve(none.build())).toMatchObject({ status: 'optimal', objective: 4 });
    none.addRow('zero_bad', 1, 2, []);
    expect(engine.solve(none.build()).status).toBe('infeasible');
  });

  it('returns status error with a message for arrays that do not fit, and for what HiGHS refuses', () => {
    const lp = dualLp();
    const bad = engine.solve({ ...lp, colCost: new Float64Array(3) });
    expect(bad.status).toBe('error');
    expect(bad.message).toMatch(/LP duals: colCost has 3 entries for 2 columns/);

    // HiGHS refuses coefficients above 1e15; with its output off it would say nothing, the engine asks again.
    const huge = engine.solve({ ...lp, value: Float64Array.of(1, 1e16, 1) });
    expect(huge.status).toBe('error');
    expect(huge.message).toMatch(/HiGHS refused LP duals: .*1e\+15/);
    expect(engine.broken).toBeUndefined();
    expect(engine.solve(lp).status).toBe('optimal');
  });

  it('disposes every model it creates, whatever the outcome', () => {
    const lps = [
      dualLp(),
      mipLp(),
      infeasibleLp(),
      unboundedLp(true),
      { ...dualLp(), value: Float64Array.of(1e16, 1, 1) },
    ];
    for (let k = 0; k < 5; k++) {
      for (const lp of lps) engine.solve(lp, { iis: true });
      engine.solveVariants(transportLp(), [{}, { colCosts: [{ col: 0, cost: 1 }] }], [0]);
      expect(engine.openModels()).toBe(0);
    }
  });
});

describe('HighsEngine.solveVariants', () => {
  it('equals solving each variant from scratch, each relative to the base program', () => {
    const lp = transportLp();
    const variants: LpVariant[] = [
      {},
      { colCosts: [{ col: 1, cost: 20 }] },
      { colBounds: [{ col: 11, lower: 0, upper: 5 }] },
      { colBounds: [{ col: 0, lower: 20, upper: 20 }], colCosts: [{ col: 7, cost: 1 }] },
      // Infeasible alone: the next variant must not inherit it.
      { colBounds: [{ col: 0, lower: 31, upper: 40 }] },
      {},
      { colCosts: [{ col: 1, cost: 20 }] },
    ];
    const report = [0, 1, 7, 11];
    const results = engine.solveVariants(lp, variants, report);
    expect(results.map((r) => r.status)).toEqual([
      'optimal',
      'optimal',
      'optimal',
      'optimal',
      'infeasible',
      'optimal',
      'optimal',
    ]);
    variants.forEach((v, k) => {
      const alone = engine.solve(applied(lp, v));
      const r = results[k]!;
      expect(r.status).toBe(alone.status);
      if (alone.status !== 'optimal') {
        expect(r.objective).toBeNaN();
        expect([...r.values].every(Number.isNaN)).toBe(true);
        return;
      }
      // Values may differ on a degenerate face; the objective may not.
      expect(r.objective).toBeCloseTo(alone.objective, 9);
      expect(r.values.length).toBe(report.length);
    });
    // The reported values obey each variant's own bounds, and only its own.
    expect(results[2]!.values[3]).toBeLessThanOrEqual(5);
    expect(results[3]!.values[0]).toBeCloseTo(20, 9);
    expect(results[5]!.objective).toBeCloseTo(results[0]!.objective, 9);
    expect(results[6]!.objective).toBeCloseTo(results[1]!.objective, 9);
    expect(engine.openModels()).toBe(0);
  });

  it('works for a MIP', () => {
    const lp = mipLp();
    const variants: LpVariant[] = [
      {},
      { colBounds: [{ col: 0, lower: 0, upper: 0 }] },
      { colCosts: [{ col: 2, cost: -9 }] },
    ];
    const results = engine.solveVariants(lp, variants, [0, 1, 2]);
    variants.forEach((v, k) => {
      const alone = engine.solve(applied(lp, v));
      expect(results[k]!.status).toBe('optimal');
      expect(results[k]!.objective).toBeCloseTo(alone.objective, 9);
    });
  });

  it('refuses variant and report columns that do not exist', () => {
    const lp = dualLp();
    expect(() => engine.solveVariants(lp, [], [2])).toThrow(LpError);
    expect(() => engine.solveVariants(lp, [{ colCosts: [{ col: -1, cost: 0 }] }], [])).toThrow(
      /variant #0 refers to column -1, but the LP has columns 0..1/,
    );
    expect(engine.solveVariants(lp, [], [0])).toEqual([]);
  });

  it('reports every variant as an error when the base program cannot be loaded', () => {
    const lp = { ...dualLp(), rowUpper: new Float64Array(1) };
    const results = engine.solveVariants(lp, [{}, {}], [0]);
    expect(results.map((r) => r.status)).toEqual(['error', 'error']);
    expect(results[0]!.message).toMatch(/rowUpper has 1 entries for 2 rows/);
  });
});

describe('HighsEngine.solveLpText', () => {
  it('reads CPLEX LP text with HiGHS and reports the column names in its order', () => {
    const { result, colNames } = engine.solveLpText(
      'Minimize\n obj: 1 y + 2 x\nSubject To\n c: 1 x + 1 y >= 2\nBounds\n 0 <= y <= 0.5\nEnd\n',
    );
    expect(colNames).toEqual(['y', 'x']);
    expect(result.status).toBe('optimal');
    expect(result.objective).toBeCloseTo(0.5 + 3, 12);
  });

  it('becomes broken, and says so, when text it cannot parse aborts its WASM runtime (highs 1.15 does)', async () => {
    // A runtime of its own: after an abort nothing more can be solved in it.
    const doomed = await loadHighsEngine();
    const { result, colNames } = doomed.solveLpText('Minimize\n obj: 1 x\nSubject To\n c: 1 x >=\nEnd\n');
    expect(result.status).toBe('error');
    expect(colNames).toEqual([]);
    expect(doomed.broken).toMatch(/the HiGHS WASM runtime aborted .* while solving LP text; load a new engine/);
    const after = doomed.solve(dualLp());
    expect(after.status).toBe('error');
    expect(after.message).toBe(doomed.broken);
    expect(doomed.solveVariants(dualLp(), [{}], [0])[0]).toMatchObject({ status: 'error', message: doomed.broken });
    expect(doomed.openModels()).toBe(0);
    // The shared engine lives in another runtime and is untouched.
    expect(engine.solve(dualLp()).status).toBe('optimal');
  });
});
