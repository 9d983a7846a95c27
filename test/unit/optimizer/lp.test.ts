import { describe, expect, it } from 'vitest';
import {
  cplexNameProblem,
  evaluateObjective,
  isMip,
  type LinearProgram,
  LpBuilder,
  LpError,
  lpShapeProblem,
  maxViolation,
} from '../../../agent/optimizer/lp.js';

function small(): LinearProgram {
  const b = new LpBuilder('small');
  const x = b.addColumn('x', 0, 4, 1);
  const y = b.addColumn('y', -1, Number.POSITIVE_INFINITY, -2);
  b.addRow('sum', 1, 3, [
    [x, 1],
    [y, 1],
  ]);
  b.addRow('diff', Number.NEGATIVE_INFINITY, 0.5, [
    [x, 1],
    [y, -1],
  ]);
  b.addOffset(10);
  return b.build();
}

describe('LpBuilder', () => {
  it('builds CSR rows, bounds, costs and the offset in the order given', () => {
    const lp = small();
    expect(lp.name).toBe('small');
    expect(lp.colNames).toEqual(['x', 'y']);
    expect([...lp.colLower]).toEqual([0, -1]);
    expect([...lp.colUpper]).toEqual([4, Number.POSITIVE_INFINITY]);
    expect([...lp.colCost]).toEqual([1, -2]);
    expect(lp.rowNames).toEqual(['sum', 'diff']);
    expect([...lp.rowLower]).toEqual([1, Number.NEGATIVE_INFINITY]);
    expect([...lp.rowUpper]).toEqual([3, 0.5]);
    expect([...lp.rowStart]).toEqual([0, 2, 4]);
    expect([...lp.index]).toEqual([0, 1, 0, 1]);
    expect([...lp.value]).toEqual([1, 1, 1, -1]);
    expect(lp.offset).toBe(10);
    expect(isMip(lp)).toBe(false);
    expect(lpShapeProblem(lp)).toBeUndefined();
  });

  it('reports its size while building and returns indices', () => {
    const b = new LpBuilder('count');
    expect(b.addColumn('a', 0, 1)).toBe(0);
    expect(b.addColumn('b', 0, 1)).toBe(1);
    expect(b.addRow('r', 0, 1, [[0, 1]])).toBe(0);
    expect([b.columns, b.rows]).toEqual([2, 1]);
  });

  it('sums duplicate columns in a row, sorts by column and drops terms that cancel', () => {
    const b = new LpBuilder('dup');
    const x = b.addColumn('x', 0, 1);
    const y = b.addColumn('y', 0, 1);
    const z = b.addColumn('z', 0, 1);
    b.addRow('r', 0, 1, [
      [z, 2],
      [x, 1],
      [z, 3],
      [y, 1],
      [y, -1],
    ]);
    const lp = b.build();
    expect([...lp.index]).toEqual([x, z]);
    expect([...lp.value]).toEqual([1, 5]);
  });

  it('marks integer columns and makes the program a MIP', () => {
    const b = new LpBuilder('mip');
    b.addColumn('c', 0, 10);
    b.addColumn('i', 0, 1, 0, true);
    const lp = b.build();
    expect([...lp.integrality]).toEqual([0, 1]);
    expect(isMip(lp)).toBe(true);
  });

  it('accumulates offsets', () => {
    const b = new LpBuilder('off');
    b.addOffset(1.5);
    b.addOffset(-0.25);
    expect(b.build().offset).toBe(1.25);
  });

  it('build() returns copies: building further does not change an earlier program', () => {
    const b = new LpBuilder('copy');
    b.addColumn('x', 0, 1, 1);
    const first = b.build();
    b.addColumn('y', 0, 1, 1);
    expect(first.colNames).toEqual(['x']);
    expect(first.colCost.length).toBe(1);
  });

  it('refuses bad names, used names and names HiGHS would misread', () => {
    const b = new LpBuilder('names');
    b.addColumn('x', 0, 1);
    expect(() => b.addColumn('x', 0, 1)).toThrow(/used twice/);
    expect(() => b.addRow('x', 0, 1, [])).toThrow(/used twice/);
    expect(() => b.addColumn('1x', 0, 1)).toThrow(LpError);
    expect(() => b.addColumn('a b', 0, 1)).toThrow(/letter or _/);
    expect(() => b.addColumn('', 0, 1)).toThrow(/letter or _/);
    expect(() => b.addColumn('a'.repeat(256), 0, 1)).toThrow(/255/);
    expect(() => b.addColumn('inflow_3', 0, 1)).toThrow(/"inf" or "nan"/);
    expect(() => b.addColumn('NaNo', 0, 1)).toThrow(/"inf" or "nan"/);
    expect(() => b.addColumn('End', 0, 1)).toThrow(/keyword/);
    expect(() => b.addRow('free', 0, 1, [])).toThrow(/keyword/);
    expect(b.addColumn('a'.repeat(255), 0, 1)).toBe(1);
    expect(b.addColumn('_x.y_2', 0, 1)).toBe(2);
  });

  it('refuses inconsistent bounds, NaN and infinite costs, and unknown columns', () => {
    const b = new LpBuilder('bad');
    const x = b.addColumn('x', 0, 1);
    expect(() => b.addColumn('lohi', 2, 1)).toThrow(/lower bound 2 is above upper bound 1/);
    expect(() => b.addColumn('nan', Number.NaN, 1)).toThrow(LpError);
    expect(() => b.addColumn('cost', 0, 1, Number.POSITIVE_INFINITY)).toThrow(/must be numbers/);
    expect(() => b.addRow('r1', Number.NaN, 1, [[x, 1]])).toThrow(/bounds must be numbers/);
    expect(() => b.addRow('r2', 0, 1, [[5, 1]])).toThrow(/column index 5 does not exist/);
    expect(() => b.addRow('r3', 0, 1, [[0.5, 1]])).toThrow(/column index 0.5/);
    expect(() => b.addRow('r4', 0, 1, [[x, Number.POSITIVE_INFINITY]])).toThrow(/coefficient of x is Infinity/);
    expect(() => b.addOffset(Number.NaN)).toThrow(/offset must be finite/);
  });
});

describe('cplexNameProblem', () => {
  it('accepts the names the formulation makes and refuses the ones the readers cannot take', () => {
    for (const name of ['imp_0_12', 'soc_1_2_95', 'x', '_a', 'a.b', 'e1', 'in', 'minx', 'stx', 'freeze']) {
      expect(cplexNameProblem(name)).toBeUndefined();
    }
    for (const name of ['inf', 'Infinity', 'infeed', 'nan', 'min', 'MAXIMUM', 'st', 'bounds', 'bin', 'sos', 'x-y']) {
      expect(cplexNameProblem(name)).toBeDefined();
    }
  });
});

describe('lpShapeProblem', () => {
  it('names what is inconsistent in hand-made arrays', () => {
    const lp = small();
    expect(lpShapeProblem({ ...lp, colCost: new Float64Array(1) })).toMatch(/colCost has 1 entries for 2 columns/);
    expect(lpShapeProblem({ ...lp, rowUpper: new Float64Array(3) })).toMatch(/rowUpper has 3 entries for 2 rows/);
    expect(lpShapeProblem({ ...lp, rowStart: Int32Array.of(0, 2) })).toMatch(/rowStart has 2 entries, expected 3/);
    expect(lpShapeProblem({ ...lp, rowStart: Int32Array.of(1, 2, 4) })).toMatch(/rowStart\[0\] is 1/);
    expect(lpShapeProblem({ ...lp, rowStart: Int32Array.of(0, 3, 2) })).toMatch(/rowStart ends at 2/);
    expect(lpShapeProblem({ ...lp, index: Int32Array.of(0, 1, 0, 7) })).toMatch(/row diff refers to column index 7/);
    expect(lpShapeProblem({ ...lp, index: Int32Array.of(0, 0, 0, 1) })).toMatch(/row sum lists column x twice/);
    expect(lpShapeProblem({ ...lp, value: Float64Array.of(1, Number.NaN, 1, 1) })).toMatch(/coefficient NaN/);
    expect(lpShapeProblem({ ...lp, colLower: Float64Array.of(Number.POSITIVE_INFINITY, 0) })).toMatch(
      /column x has bounds \[Infinity/,
    );
    expect(lpShapeProblem({ ...lp, rowLower: Float64Array.of(Number.NaN, 0) })).toMatch(/row sum has bounds \[NaN/);
    expect(lpShapeProblem({ ...lp, offset: Number.NaN })).toMatch(/offset is NaN/);
  });
});

describe('evaluateObjective and maxViolation', () => {
  it('recompute the objective with the offset', () => {
    const lp = small();
    expect(evaluateObjective(lp, [2, 1])).toBe(10 + 2 - 2);
    expect(evaluateObjective(lp, [0, 0])).toBe(10);
  });

  it('are zero for a feasible point and name the worst bound or row otherwise', () => {
    const lp = small();
    expect(maxViolation(lp, [0.5, 0.5])).toEqual({ amount: 0, where: '' });
    expect(maxViolation(lp, [2.5, 2])).toEqual({ amount: 1.5, where: 'row sum above its upper bound' });
    expect(maxViolation(lp, [0, -3])).toEqual({ amount: 4, where: 'row sum below its lower bound' });
    expect(maxViolation(lp, [4.25, -0.5])).toEqual({ amount: 4.25, where: 'row diff above its upper bound' });
    expect(maxViolation(lp, [-0.5, 1.5])).toEqual({ amount: 0.5, where: 'column x below its lower bound' });
  });
});
