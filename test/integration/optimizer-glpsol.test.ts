/**
 * The optimizer's building models, exported as CPLEX LP files, solved by GLPK's glpsol (an independent solver and
 * LP reader): the objectives equal HiGHS's to a relative 1e-6 for every case the model has (PV only, PV and battery,
 * EV, flexible loads, trades and caps, negative prices with binaries), at one day and at one week.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { formulate } from '../../agent/optimizer/formulate.js';
import { glpsolPath, solveWithGlpsol } from '../../agent/optimizer/glpsol.js';
import { toCplexLp } from '../../agent/optimizer/lp-format.js';
import { createInlineSolver, type Solver } from '../../agent/optimizer/solver.js';
import { namedCases, randomSite } from '../../bench/optimizer-cases.js';
import { describeIfTool } from './modbus-helpers.js';

describeIfTool(
  'glpsol',
  'glpk-utils',
  glpsolPath() !== undefined,
)('optimizer models against glpsol', () => {
  let solver: Solver;
  beforeAll(async () => {
    solver = await createInlineSolver();
  });
  afterAll(async () => {
    await solver.close();
  });

  const cases = [
    ...namedCases(96).map((c) => ({ ...c, name: `${c.name} (96 steps)` })),
    ...namedCases(672)
      .filter((c) => c.name !== 'negative-prices')
      .map((c) => ({ ...c, name: `${c.name} (672 steps)` })),
    ...[3, 7, 11].map((seed) => ({ name: `random seed ${seed}`, site: randomSite(seed, 96) })),
  ];

  for (const c of cases) {
    it(`${c.name}: glpsol and HiGHS agree on the exported LP`, async () => {
      const f = formulate(c.site);
      const text = toCplexLp(f.lp);
      const ours = await solver.solve(f.lp);
      expect(ours.status).toBe('optimal');
      const reference = await solveWithGlpsol(text, { timeLimitSeconds: 120 });
      expect(reference.status).toBe('optimal');
      const scale = Math.max(1, Math.abs(reference.objective));
      expect(Math.abs(ours.objective - reference.objective) / scale).toBeLessThan(1e-6);
    });
  }
});
