/**
 * HiGHS (inline) against glpsol on the LP text toCplexLp writes: the same status and the same objective to 1e-9
 * relative, and glpsol's point feasible for our program. glpsol is a Debian binary (glpk-utils): without it these
 * tests are skipped loudly, and fail in CI.
 */
import { beforeAll, expect, it } from 'vitest';
import { glpsolPath, solveWithGlpsol } from '../../../agent/optimizer/glpsol.js';
import { type HighsEngine, loadHighsEngine } from '../../../agent/optimizer/highs.js';
import { evaluateObjective, type LinearProgram, LpBuilder, maxViolation } from '../../../agent/optimizer/lp.js';
import { toCplexLp } from '../../../agent/optimizer/lp-format.js';
import { describeIfTool } from '../../integration/modbus-helpers.js';

const INF = Number.POSITIVE_INFINITY;
const describeGlpsol = describeIfTool('glpsol', 'glpk-utils', glpsolPath() !== undefined);

let engine: HighsEngine;
beforeAll(async () => {
  engine = await loadHighsEngine();
});

/** Solves with both and checks they agree; returns HiGHS's result for further checks. */
async function agree(lp: LinearProgram) {
  const highs = engine.solve(lp);
  const glpk = await solveWithGlpsol(toCplexLp(lp));
  expect(glpk.status, `glpsol status of ${lp.name}`).toBe(highs.status);
  if (highs.status !== 'optimal') {
    expect(glpk.objective).toBeNaN();
    expect(glpk.values.size).toBe(0);
    return highs;
  }
  const scale = Math.max(1, Math.abs(highs.objective));
  expect(Math.abs(glpk.objective - highs.objective) / scale, `objective of ${lp.name}`).toBeLessThanOrEqual(1e-9);
  // glpsol's own point is feasible for our program and reaches its objective (values may differ on a tie).
  const x = lp.colNames.map((name) => glpk.values.get(name) ?? Number.NaN);
  expect(maxViolation(lp, x).amount).toBeLessThanOrEqual(1e-7);
  expect(Math.abs(evaluateObjective(lp, x) - glpk.objective) / scale).toBeLessThanOrEqual(1e-9);
  expect(glpk.wallMs).toBeGreaterThan(0);
  return highs;
}

function ranges(): LinearProgram {
  // min 2a + 3b - c  with a + b in [1, 4], a - c in [-2, 2], a + b + c = 3
  const b = new LpBuilder('ranges');
  const a = b.addColumn('a', 0, INF, 2);
  const bb = b.addColumn('b', 0, INF, 3);
  const c = b.addColumn('c', 0, INF, -1);
  b.addRow('sum_ab', 1, 4, [
    [a, 1],
    [bb, 1],
  ]);
  b.addRow('diff_ac', -2, 2, [
    [a, 1],
    [c, -1],
  ]);
  b.addRow('all', 3, 3, [
    [a, 1],
    [bb, 1],
    [c, 1],
  ]);
  return b.build();
}

function bounds(): LinearProgram {
  const b = new LpBuilder('bounds');
  const free = b.addColumn('free_col', -INF, INF, 1);
  const fixed = b.addColumn('fixed_col', -2.5, -2.5, 4);
  const negative = b.addColumn('negative', -7, -3, -1);
  const below = b.addColumn('below_only', -INF, 6, -0.5);
  const tiny = b.addColumn('tiny', 1e-7, 2e-6, 1e9);
  b.addRow('keep_free', -10, INF, [
    [free, 1],
    [negative, 1],
    [below, 0.25],
  ]);
  b.addRow('link', -INF, 1e-6, [
    [tiny, 1],
    [fixed, 1e-7],
  ]);
  return b.build();
}

function withOffset(): LinearProgram {
  const b = new LpBuilder('offset');
  const x = b.addColumn('x', 0, 3, -1.5);
  b.addRow('r', 0.5, INF, [[x, 1]]);
  b.addOffset(-123.456789);
  return b.build();
}

/** max 5a + 4b + 3c (as min of the negation) with binaries that gate c and generals. */
function knapsack(): LinearProgram {
  const b = new LpBuilder('knapsack');
  const a = b.addColumn('a', 0, 10, -5, true);
  const bb = b.addColumn('b', 0, 10, -4, true);
  const c = b.addColumn('c', 0, 10, -3, true);
  const on = b.addColumn('on', 0, 1, 0.5, true);
  const off = b.addColumn('off', 0, 1, 0.25, true);
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
  // Exactly one of on/off, and `on` allows c to be used at all.
  b.addRow('one_of', 1, 1, [
    [on, 1],
    [off, 1],
  ]);
  b.addRow('c_needs_on', -INF, 0, [
    [c, 1],
    [on, -10],
  ]);
  return b.build();
}

function infeasible(integer: boolean): LinearProgram {
  const b = new LpBuilder(`infeasible_${integer ? 'mip' : 'lp'}`);
  const x = b.addColumn('x', 0, INF, 1, integer);
  const y = b.addColumn('y', 0, INF, 1);
  b.addRow('ge5', 5, INF, [
    [x, 1],
    [y, 1],
  ]);
  b.addRow('le3', -INF, 3, [
    [x, 1],
    [y, 1],
  ]);
  return b.build();
}

function integerInfeasible(): LinearProgram {
  const b = new LpBuilder('odd_even');
  const x = b.addColumn('x', 0, 10, 1, true);
  b.addRow('half', 1, 1, [[x, 2]]);
  return b.build();
}

function unbounded(integer: boolean): LinearProgram {
  const b = new LpBuilder(`unbounded_${integer ? 'mip' : 'lp'}`);
  const x = b.addColumn('x', 0, INF, -1, integer);
  const y = b.addColumn('y', 0, INF, 0);
  b.addRow('r', 0, INF, [
    [x, 1],
    [y, -1],
  ]);
  return b.build();
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sparse program that is feasible by construction (rows are built around a known point) and bounded (every
 * column is boxed): `integers` of the columns are integer, and the known point is integral there.
 */
function randomProgram(seed: number, cols: number, rows: number, integers = 0): LinearProgram {
  const rnd = random(seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;
  const b = new LpBuilder(`random_${seed}_${cols}x${rows}${integers > 0 ? '_mip' : ''}`);
  const point: number[] = [];
  for (let j = 0; j < cols; j++) {
    const integer = j < integers;
    const lower = integer ? -pick(5) : round(-10 * rnd());
    const upper = lower + (integer ? 1 + pick(6) : round(0.5 + 20 * rnd()));
    b.addColumn(`x${j}`, lower, upper, round(20 * rnd() - 10), integer);
    point.push(integer ? lower + pick(upper - lower + 1) : lower + rnd() * (upper - lower));
  }
  for (let i = 0; i < rows; i++) {
    const terms = new Map<number, number>();
    const size = 2 + pick(6);
    while (terms.size < size) terms.set(pick(cols), round(10 * rnd() - 5, 2) || 1);
    const activity = [...terms].reduce((s, [j, a]) => s + a * (point[j] ?? 0), 0);
    const kind = pick(4);
    const slack = round(1 + 5 * rnd());
    const lower = kind === 1 ? -INF : round(activity - slack, 3);
    const upper = kind === 0 ? INF : kind === 3 ? lower : round(activity + slack, 3);
    // An equality on continuous terms only, or it may cut the integer lattice.
    const equalityOk = [...terms.keys()].every((j) => j >= integers);
    if (kind === 3 && !equalityOk) b.addRow(`r${i}`, round(activity - slack), round(activity + slack), [...terms]);
    else if (kind === 3) b.addRow(`r${i}`, round(activity, 6), round(activity, 6), [...terms]);
    else b.addRow(`r${i}`, lower, upper, [...terms]);
  }
  b.addOffset(round(100 * rnd() - 50));
  return b.build();
}

describeGlpsol('glpsol against HiGHS on toCplexLp text', () => {
  it('finds glpsol on PATH', () => {
    expect(glpsolPath()).toMatch(/glpsol$/);
  });

  it('agrees on ranges, equalities and one-sided rows', async () => {
    const r = await agree(ranges());
    // c = 2 is as large as a + b >= 1 allows; a - c >= -2 then needs a = 0 or more: a = 1, b = 0.
    expect(r.objective).toBeCloseTo(0, 9);
    expect([...r.colValue]).toEqual([1, 0, 2]);
  });

  it('agrees on free, fixed, negative and one-sided bounds and tiny numbers', async () => {
    const r = await agree(bounds());
    // The cost 1e9 holds `tiny` at its lower bound 1e-7: a misread "1e-7" would move the objective by far more.
    expect(r.colValue[4]).toBe(1e-7);
  });

  it('agrees on the objective offset', async () => {
    const r = await agree(withOffset());
    expect(r.objective).toBeCloseTo(-123.456789 - 4.5, 9);
  });

  it('agrees on a MILP with binaries and generals at its known optimum', async () => {
    const r = await agree(knapsack());
    // r3 binds: a=2, c=1 (with on=1) gives 13 - 0.5; a=2 alone, off=1 gives 10 - 0.25.
    expect(r.objective).toBeCloseTo(-12.5, 9);
  });

  it('agrees on infeasible and unbounded programs, LP and MILP', async () => {
    expect((await agree(infeasible(false))).status).toBe('infeasible');
    expect((await agree(infeasible(true))).status).toBe('infeasible');
    expect((await agree(integerInfeasible())).status).toBe('infeasible');
    expect((await agree(unbounded(false))).status).toBe('unbounded');
    expect((await agree(unbounded(true))).status).toBe('unbounded');
  });

  it('agrees on seeded random sparse LPs of a few hundred columns', async () => {
    for (const seed of [1, 2, 3]) {
      const lp = randomProgram(seed, 300, 150);
      expect((await agree(lp)).status).toBe('optimal');
    }
  });

  it('agrees on a seeded random sparse MILP', async () => {
    expect((await agree(randomProgram(7, 120, 60, 30))).status).toBe('optimal');
  });

  it("fails with glpsol's own words when it cannot read the text", async () => {
    await expect(solveWithGlpsol('Minimize\n obj: 1 x + 7\nSubject To\n c: 1 x >= 1\nEnd\n')).rejects.toThrow(
      /glpsol could not solve the LP \(exit code 1\):[\s\S]*missing variable name/,
    );
  });
});
