import { describe, expect, it } from 'vitest';
import { createFeeder, type Feeder } from '../../../agent/grid/feeder.js';
import { ieee33 } from '../../../agent/grid/ieee33.js';
import { type BusPowers, busLoads, PowerFlowError, powerFlow } from '../../../agent/grid/powerflow.js';
import { sensitivities } from '../../../agent/grid/sensitivity.js';

/** The full power flow with `deltaKw` more P (or Q) at one bus. */
function solveWith(feeder: Feeder, base: BusPowers, bus: number, kind: 'p' | 'q', delta: number) {
  const loads = { pKw: Float64Array.from(base.pKw), qKvar: Float64Array.from(base.qKvar) };
  const column = kind === 'p' ? loads.pKw : loads.qKvar;
  column[bus] = (column[bus] as number) + delta;
  return powerFlow(feeder, loads, { tolerancePu: 1e-14, maxIterations: 500 });
}

describe('sensitivities', () => {
  const feeder = createFeeder(ieee33());
  const base = busLoads(feeder);
  const solution = powerFlow(feeder, base, { tolerancePu: 1e-14, maxIterations: 500 });
  const s = sensitivities(feeder, solution);

  it('match central finite differences of the full power flow at every bus, for P and Q', () => {
    // Small enough that the truncation error of the differences (on |I| of a lightly loaded line) stays below 1e-7.
    const step = 0.1;
    let worstV = 0;
    let worstI = 0;
    let worstShare = 0;
    for (let k = 0; k < 33; k++) {
      for (const kind of ['p', 'q'] as const) {
        const up = solveWith(feeder, base, k, kind, step);
        const down = solveWith(feeder, base, k, kind, -step);
        for (let i = 0; i < 33; i++) {
          const fd = ((up.buses[i]?.vPu as number) - (down.buses[i]?.vPu as number)) / (2 * step);
          const ours = (kind === 'p' ? s.dVdP : s.dVdQ).at(i, k);
          worstV = Math.max(worstV, Math.abs(ours - fd));
        }
        for (let l = 0; l < 37; l++) {
          const line = (r: typeof up) => r.lines[l] as NonNullable<(typeof r.lines)[number]>;
          if (!line(up).inService) continue;
          const fdI = (line(up).currentA - line(down).currentA) / (2 * step);
          worstI = Math.max(worstI, Math.abs((kind === 'p' ? s.dIdP : s.dIdQ).at(l, k) - fdI));
          const flow = (r: typeof up) => (kind === 'p' ? line(r).pKw : line(r).qKvar);
          const fdShare = (flow(up) - flow(down)) / (2 * step);
          worstShare = Math.max(worstShare, Math.abs((kind === 'p' ? s.flowShareP : s.flowShareQ).at(l, k) - fdShare));
        }
      }
    }
    // dV/dP is ~1e-5 pu/kW at the far end, dI/dP ~0.05 A/kW, shares ~1: agreement to 1e-6 of each scale or better.
    expect(worstV).toBeLessThan(1e-11);
    expect(worstI).toBeLessThan(1e-7);
    expect(worstShare).toBeLessThan(1e-6);
  });

  it('have the signs and shapes a radial feeder implies', () => {
    // More load anywhere lowers every voltage but the substation's; the far end feels it most.
    expect(s.dVdP.get('18', '18')).toBeLessThan(s.dVdP.get('10', '18'));
    expect(s.dVdP.get('10', '18')).toBeLessThan(0);
    expect(s.dVdP.get('1', '18')).toBe(0);
    // A kW at bus 18 flows through s1..s17, not through the other branches; more than 1 kW, as the losses grow
    // too (at the far end of this feeder by some 15 % of it).
    for (let l = 1; l <= 17; l++) {
      expect(s.flowShareP.get(`s${l}`, '18')).toBeGreaterThan(1);
      expect(s.flowShareP.get(`s${l}`, '18')).toBeLessThan(1.2);
    }
    expect(Math.abs(s.flowShareP.get('s25', '18'))).toBeLessThan(0.01);
    expect(s.flowShareP.get('s33', '18')).toBe(0);
    expect(s.dIdP.get('s17', '18')).toBeGreaterThan(0);
  });

  it('can be limited to chosen buses (e.g. where MGMCs sit)', () => {
    const some = sensitivities(feeder, solution, { buses: ['18', '33'] });
    expect(some.columns).toEqual(['18', '33']);
    expect(some.dVdP.rows).toBe(33);
    expect(some.dVdP.cols).toBe(2);
    expect(some.dVdP.get('18', '33')).toBeCloseTo(s.dVdP.get('18', '33'), 15);
    expect(() => sensitivities(feeder, solution, { buses: ['99'] })).toThrow('no bus 99 in feeder ieee33');
  });

  it('refuse a power flow that did not converge', () => {
    const diverged = powerFlow(feeder, busLoads(feeder, { scale: 10 }));
    expect(() => sensitivities(feeder, diverged)).toThrow(PowerFlowError);
  });
});
