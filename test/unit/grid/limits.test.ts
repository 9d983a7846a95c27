import { describe, expect, it } from 'vitest';
import { createFeeder } from '../../../agent/grid/feeder.js';
import { ieee33 } from '../../../agent/grid/ieee33.js';
import { assessSeries, checkLimits } from '../../../agent/grid/limits.js';
import { busLoads, powerFlow } from '../../../agent/grid/powerflow.js';

describe('limits', () => {
  const feeder = createFeeder({ ...ieee33(), mgmcs: [{ mgmc: 'mg-a', bus: '25' }] });

  it('lists the undervoltage buses of the IEEE 33 base case, worst first', () => {
    const report = checkLimits(feeder, powerFlow(feeder));
    expect(report.ok).toBe(false);
    const under = report.violations.filter((v) => v.kind === 'undervoltage');
    expect(under).toHaveLength(21);
    expect(report.violations).toHaveLength(21);
    expect(under[0]).toMatchObject({ element: '18', limit: 0.95 });
    expect(under[0]?.message).toBe('bus 18: 0.9131 pu, below 0.95 pu');
    expect(under[0]?.excess).toBeCloseTo(0.95 - 0.91309, 4);
    // Sorted by how far below the band.
    for (let i = 1; i < under.length; i++) expect(under[i]?.excess).toBeLessThanOrEqual(under[i - 1]?.excess as number);
    expect(report.maxLoading?.line).toBe('s1');
    expect(report.minVoltage.bus).toBe('18');
  });

  it('reports overloads and overvoltages, and nothing on a lightly loaded feeder', () => {
    // An MGMC at bus 25 exporting 2.5 MW: reverse flow overloads s24 (100 A) and lifts the voltage at bus 25.
    const exporting = powerFlow(feeder, busLoads(feeder, { scale: 0.2, mgmcs: { 'mg-a': { pKw: -2500 } } }));
    const report = checkLimits(feeder, exporting);
    expect(report.violations.map((v) => `${v.kind} ${v.element}`)).toEqual(['overload s24']);
    const s24 = report.violations[0];
    expect(s24?.value).toBeGreaterThan(100);
    expect(s24?.message).toMatch(/^line s24 \(24-25\): \d+\.\d A, \d+\.\d % of 100 A$/);
    // A narrower band and a lower loading limit find more.
    const strict = checkLimits(feeder, exporting, { band: { min: 0.99, max: 1.01 }, maxLoadingPct: 50 });
    expect(strict.violations.some((v) => v.kind === 'overvoltage' && v.element === '25')).toBe(true);
    expect(strict.violations.filter((v) => v.kind === 'overload').map((v) => v.element)).toEqual(
      expect.arrayContaining(['s22', 's23', 's24']),
    );
    const light = checkLimits(feeder, powerFlow(feeder, busLoads(feeder, { scale: 0.3 })));
    expect(light).toMatchObject({ ok: true, violations: [] });
  });

  it('makes a power flow without a solution a violation of its own', () => {
    const report = checkLimits(feeder, powerFlow(feeder, busLoads(feeder, { scale: 10 })));
    expect(report.ok).toBe(false);
    expect(report.violations).toHaveLength(1);
    expect(report.violations[0]?.kind).toBe('not-converged');
    expect(report.violations[0]?.message).toMatch(/diverged/);
  });

  it('assesses a series of intervals and names the insecure ones', () => {
    const series = [0.3, 1, 0.5, 10].map((scale, i) => ({
      interval: 1_700_000_000_000 + i * 900_000,
      loads: busLoads(feeder, { scale }),
    }));
    const assessed = assessSeries(feeder, series);
    expect(assessed.ok).toBe(false);
    expect(assessed.violating).toEqual([1_700_000_000_000 + 900_000, 1_700_000_000_000 + 3 * 900_000]);
    expect(assessed.intervals.map((i) => i.report.interval)).toEqual(series.map((s) => s.interval));
    expect(assessed.intervals[3]?.report.violations[0]?.kind).toBe('not-converged');
  });
});
