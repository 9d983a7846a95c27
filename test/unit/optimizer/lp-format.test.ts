import { beforeAll, describe, expect, it } from 'vitest';
import { type HighsEngine, loadHighsEngine } from '../../../agent/optimizer/highs.js';
import { type LinearProgram, LpBuilder, LpError } from '../../../agent/optimizer/lp.js';
import { toCplexLp } from '../../../agent/optimizer/lp-format.js';

const INF = Number.POSITIVE_INFINITY;

let engine: HighsEngine;
beforeAll(async () => {
  engine = await loadHighsEngine();
});

/** One of everything the writer has to get right. */
function everything(): LinearProgram {
  const b = new LpBuilder('every kind *\\ of row');
  const x = b.addColumn('x', -5, 4, 2);
  const y = b.addColumn('y', 2, 2, 3);
  const z = b.addColumn('z', -INF, INF, -1);
  const w = b.addColumn('w', -3, -1, 0.5);
  const u = b.addColumn('u', -INF, 5, 0);
  const v = b.addColumn('v', 1e-7, INF, 1.5e12);
  const g = b.addColumn('g', 0, 10, 1, true);
  const bin = b.addColumn('b', 0, 1, -1, true);
  b.addRow('at_least', 1, INF, [
    [x, 1],
    [y, 1],
  ]);
  b.addRow('range', -2, 3, [
    [x, 1],
    [y, -1],
  ]);
  b.addRow('at_most', -INF, 1e-7, [
    [x, 1],
    [z, 1],
  ]);
  b.addRow('mixed', -INF, 7.5, [
    [z, -1],
    [g, 1],
    [bin, 2],
    [u, -0.25],
  ]);
  b.addRow('equal', 2.5, 2.5, [
    [g, 1],
    [w, -1],
  ]);
  b.addRow('unbounded_row', -INF, INF, [[g, 1]]);
  b.addRow('empty', -1, 1, []);
  b.addRow('small', -10, INF, [
    [v, 1],
    [u, 1],
  ]);
  b.addOffset(7.25);
  return b.build();
}

describe('toCplexLp', () => {
  it('writes every kind of bound, row and integrality in the subset glpsol and HiGHS share', () => {
    expect(toCplexLp(everything())).toBe(
      [
        '\\* every kind * \\ of row *\\',
        "\\* __offset is fixed at 1: its cost is the objective's constant 7.25 (glpsol reads no constant) *\\",
        'Minimize',
        ' obj: 2 x + 3 y - 1 z + 0.5 w + 0 u + 1500000000000 v + 1 g - 1 b + 7.25 __offset',
        'Subject To',
        ' at_least: 1 x + 1 y >= 1',
        ' range: 1 x - 1 y >= -2',
        ' range_hi: 1 x - 1 y <= 3',
        ' at_most: 1 x + 1 z <= 1e-7',
        ' mixed: - 1 z - 0.25 u + 1 g + 2 b <= 7.5',
        ' equal: - 1 w + 1 g = 2.5',
        '\\ row unbounded_row has no bounds and is left out',
        ' empty: 0 x >= -1',
        ' empty_hi: 0 x <= 1',
        ' small: 1 u + 1 v >= -10',
        'Bounds',
        ' -5 <= x <= 4',
        ' y = 2',
        ' z free',
        ' -3 <= w <= -1',
        ' -inf <= u <= 5',
        ' v >= 1e-7',
        ' 0 <= g <= 10',
        ' __offset = 1',
        'Binaries',
        ' b',
        'Generals',
        ' g',
        'End',
        '',
      ].join('\n'),
    );
  });

  it('is read by HiGHS as the same program: same columns in the same order, same optimum', () => {
    const cases = [everything(), wide(400, 3), wide(50, 1)];
    for (const lp of cases) {
      const direct = engine.solve(lp);
      const { result, colNames } = engine.solveLpText(toCplexLp(lp));
      expect(direct.status).toBe('optimal');
      expect(result.status).toBe('optimal');
      expect(colNames.slice(0, lp.colNames.length)).toEqual(lp.colNames);
      expect(Math.abs(result.objective - direct.objective)).toBeLessThanOrEqual(
        1e-9 * Math.max(1, Math.abs(direct.objective)),
      );
    }
  });

  it('wraps long rows and the objective near 100 characters, continuation lines indented', () => {
    const text = toCplexLp(wide(400, 3));
    const lines = text.split('\n');
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(100);
    const objective = lines.findIndex((l) => l.startsWith(' obj:'));
    expect(lines[objective + 1]).toMatch(/^ {4}[+-] /);
    // Every one of the 400 columns appears in the objective, in order.
    const objectiveText = lines.slice(objective, lines.indexOf('Subject To')).join(' ');
    expect([...objectiveText.matchAll(/ (c_\d+)/g)].map((m) => m[1])).toEqual(
      Array.from({ length: 400 }, (_, j) => `c_${j}`),
    );
  });

  it('picks fresh names for the offset column and the upper halves of ranges when those are taken', () => {
    const b = new LpBuilder('taken');
    const x = b.addColumn('__offset', 0, 1, 1);
    b.addColumn('r_hi', 0, 1, 1);
    b.addRow('r', 0, 1, [[x, 1]]);
    b.addOffset(3);
    const text = toCplexLp(b.build());
    expect(text).toContain(' r_hi2: 1 __offset <= 1');
    expect(text).toContain(' + 3 __offset2\n');
    expect(text).toContain(' __offset2 = 1');
  });

  it('gives a program without rows one empty row (glpsol needs one) and keeps a program without columns', () => {
    const b = new LpBuilder('no_rows');
    b.addColumn('x', 0, 1, 1);
    expect(toCplexLp(b.build())).toContain('Subject To\n __norows: 0 x >= 0\nBounds');
    const none = new LpBuilder('nothing');
    expect(toCplexLp(none.build())).toContain(' obj: 0 __offset\n');
  });

  it('refuses names HiGHS would misread and arrays that do not fit', () => {
    const lp = everything();
    expect(() => toCplexLp({ ...lp, colNames: ['inflow', ...lp.colNames.slice(1)] })).toThrow(
      /cannot write LP .*: the name "inflow" of column #0 must not start with "inf"/,
    );
    expect(() => toCplexLp({ ...lp, rowNames: [...lp.rowNames.slice(0, -1), 'end'] })).toThrow(
      /the name "end" of row #7 is a keyword/,
    );
    expect(() => toCplexLp({ ...lp, colUpper: new Float64Array(2) })).toThrow(LpError);
  });
});

/** `n` columns in rows of `perRow` consecutive columns, long enough to wrap. */
function wide(n: number, perRow: number): LinearProgram {
  const b = new LpBuilder(`wide_${n}`);
  const cols = Array.from({ length: n }, (_, j) => b.addColumn(`c_${j}`, 0, 10 + (j % 7), ((j * 37) % 11) - 5));
  b.addRow(
    'budget',
    -INF,
    2 * n,
    cols.map((c) => [c, 1.25] as const),
  );
  for (let j = 0; j + perRow <= n; j += perRow) {
    b.addRow(
      `r_${j}`,
      1,
      20,
      cols.slice(j, j + perRow).map((c, k) => [c, k + 1] as const),
    );
  }
  return b.build();
}
