import { describe, expect, it } from 'vitest';
import { createFeeder, type FeederSpec, withSwitchStates } from '../../../agent/grid/feeder.js';
import { IEEE33_PUBLISHED, ieee33 } from '../../../agent/grid/ieee33.js';
import { busLoads, PowerFlowError, powerFlow, requireConverged } from '../../../agent/grid/powerflow.js';
import { newtonRaphson } from '../../../bench/grid-newton.js';

describe('IEEE 33-bus feeder data', () => {
  it('has the published size and totals', () => {
    const spec = ieee33();
    expect(spec.buses).toHaveLength(33);
    expect(spec.lines).toHaveLength(37);
    expect(spec.baseKv).toBe(12.66);
    expect(spec.buses.reduce((s, b) => s + b.pKw, 0)).toBe(3715);
    expect(spec.buses.reduce((s, b) => s + b.qKvar, 0)).toBe(2300);
    expect(spec.lines.filter((l) => l.status === 'open').map((l) => `${l.name} ${l.from}-${l.to}`)).toEqual([
      's33 21-8',
      's34 9-15',
      's35 12-22',
      's36 18-33',
      's37 25-29',
    ]);
    // A few lines checked one by one against Baran & Wu's table.
    const line = (n: number) => spec.lines[n - 1];
    expect(line(1)).toMatchObject({ from: '1', to: '2', rOhm: 0.0922, xOhm: 0.047 });
    // biome-ignore lint/suspicious/noApproximativeNumericConstant: the published reactance of line 5, not 1/√2
    expect(line(5)).toMatchObject({ from: '5', to: '6', rOhm: 0.819, xOhm: 0.707 });
    expect(line(18)).toMatchObject({ from: '2', to: '19', rOhm: 0.164, xOhm: 0.1565 });
    expect(line(32)).toMatchObject({ from: '32', to: '33', rOhm: 0.341, xOhm: 0.5302 });
    expect(spec.buses[29]).toEqual({ name: '30', pKw: 200, qKvar: 600 });
  });
});

describe('backward/forward sweep', () => {
  const feeder = createFeeder(ieee33());

  it('reproduces the published base case: 202.67 kW of losses, 0.9131 pu at bus 18', () => {
    const result = powerFlow(feeder);
    expect(result.status).toBe('converged');
    expect(result.converged).toBe(true);
    expect(result.iterations).toBeLessThan(20);
    expect(Math.abs(result.lossKw - IEEE33_PUBLISHED.lossKw)).toBeLessThan(0.1);
    expect(result.minVoltage.bus).toBe(IEEE33_PUBLISHED.minVoltageBus);
    expect(Math.abs(result.minVoltage.pu - IEEE33_PUBLISHED.minVoltagePu)).toBeLessThan(1e-4);
    expect(result.maxVoltage).toEqual({ bus: '1', pu: 1 });
    expect(result.loadKw).toBeCloseTo(3715, 9);
    expect(result.loadKvar).toBeCloseTo(2300, 9);
  });

  it('balances energy: the substation supplies the loads plus the losses, line by line too', () => {
    const result = powerFlow(feeder);
    expect(result.slackKw).toBeCloseTo(result.loadKw + result.lossKw, 6);
    expect(result.slackKvar).toBeCloseTo(result.loadKvar + result.lossKvar, 6);
    const sumLosses = result.lines.reduce((s, l) => s + l.lossKw, 0);
    expect(sumLosses).toBeCloseTo(result.lossKw, 9);
    // Kirchhoff at bus 2: what enters over s1, minus s1's losses, is bus 2's load plus what leaves over s2 and s18.
    const byName = new Map(result.lines.map((l) => [l.name, l]));
    const get = (name: string) => byName.get(name) as NonNullable<ReturnType<typeof byName.get>>;
    expect(get('s1').pKw - get('s1').lossKw).toBeCloseTo(100 + get('s2').pKw + get('s18').pKw, 6);
    expect(get('s1').pKw).toBeCloseTo(result.slackKw, 6);
    // The open tie lines carry nothing.
    expect(get('s33')).toMatchObject({ inService: false, currentA: 0, pKw: 0, loadingPct: 0 });
    expect(get('s1').upstream).toBe('1');
  });

  it('agrees with a dense Newton-Raphson power flow', () => {
    const loads = busLoads(feeder);
    const sweep = powerFlow(feeder, loads, { tolerancePu: 1e-11 });
    const newton = newtonRaphson(feeder, loads, { tolerancePu: 1e-11 });
    expect(newton.converged).toBe(true);
    for (const [i, bus] of sweep.buses.entries()) {
      expect(Math.abs(bus.vPu - (newton.vPu[i] as number))).toBeLessThan(1e-9);
      expect(Math.abs((bus.angleDeg * Math.PI) / 180 - (newton.angleRad[i] as number))).toBeLessThan(1e-9);
    }
    expect(sweep.lossKw).toBeCloseTo(newton.lossKw, 6);
  });

  it('reports currents in amperes and loadings against ampacity', () => {
    const result = powerFlow(feeder);
    const s1 = result.lines[0];
    // |S| / (√3 V) at the substation end: 3917.7 kW, 2435.1 kvar at 12.66 kV.
    const expected = Math.hypot(result.slackKw, result.slackKvar) / (Math.sqrt(3) * 12.66);
    expect(s1?.currentA).toBeCloseTo(expected, 6);
    expect(s1?.loadingPct).toBeCloseTo((100 * expected) / 300, 6);
  });

  it('adds MGMC net positions to the load of their bus', () => {
    const spec = { ...ieee33(), mgmcs: [{ mgmc: 'mg-far', bus: '18' }] };
    const withMgmc = createFeeder(spec);
    const loads = busLoads(withMgmc, { mgmcs: { 'mg-far': { pKw: -90, qKvar: -40 } } });
    expect(loads.pKw[17]).toBe(0);
    expect(loads.qKvar[17]).toBe(0);
    const result = powerFlow(withMgmc, loads);
    expect(result.buses[17]?.pKw).toBe(0);
    expect(result.lossKw).toBeLessThan(202.67);
    // Scale and overrides: the override is not scaled.
    const scaled = busLoads(withMgmc, { scale: 2, buses: { '30': { pKw: 10 } } });
    expect(scaled.pKw[1]).toBe(200);
    expect(scaled.pKw[29]).toBe(10);
    expect(scaled.qKvar[29]).toBe(1200);
    expect(() => busLoads(withMgmc, { mgmcs: { nobody: { pKw: 1 } }, buses: { '99': { pKw: 1 } } })).toThrow(
      'feeder ieee33 loads: 2 problems\n' +
        '  buses.99  the name of a bus of the feeder  no bus 99\n' +
        '  mgmcs.nobody  an MGMC attached to the feeder (its mgmcs: list)  nobody is not attached to feeder ieee33',
    );
  });

  it('reports divergence under an absurd load, naming the bus, and never passes it off as a solution', () => {
    const result = powerFlow(feeder, busLoads(feeder, { scale: 10 }));
    expect(result.converged).toBe(false);
    expect(result.status).toBe('diverged');
    expect(result.iterations).toBeGreaterThan(0);
    expect(result.problem).toMatch(/^the power flow diverged at sweep \d+: the voltage at bus \d+ collapsed/);
    expect(() => requireConverged(result)).toThrow(PowerFlowError);
    expect(() => requireConverged(result)).toThrow(/^feeder ieee33: the power flow diverged/);
  });

  it('reports an iteration cap that is too low, with the last mismatch', () => {
    const result = powerFlow(feeder, undefined, { maxIterations: 2 });
    expect(result.status).toBe('iteration-limit');
    expect(result.converged).toBe(false);
    expect(result.iterations).toBe(2);
    expect(result.mismatchPu).toBeGreaterThan(1e-9);
    expect(result.problem).toMatch(
      /^the power flow did not converge in 2 sweeps \(last voltage change \d\.\d\de-\d+ pu, lowest voltage at bus 18\)/,
    );
  });

  it('follows the switches: the literature optimum has 139.55 kW of losses', () => {
    const best = withSwitchStates(feeder, {
      s33: 'closed',
      s34: 'closed',
      s35: 'closed',
      s36: 'closed',
      s7: 'open',
      s9: 'open',
      s14: 'open',
      s32: 'open',
    });
    const result = powerFlow(best);
    expect(result.lossKw).toBeCloseTo(IEEE33_PUBLISHED.bestLossKw, 1);
    expect(result.minVoltage.pu).toBeCloseTo(IEEE33_PUBLISHED.bestMinVoltagePu, 4);
  });

  it('solves a feeder whose substation is not the first bus, and a one-bus feeder', () => {
    const spec: FeederSpec = {
      name: 'two',
      baseKv: 0.4,
      baseMva: 1,
      slack: 'sub',
      buses: [
        { name: 'house', pKw: 20, qKvar: 5 },
        { name: 'sub', pKw: 0, qKvar: 0 },
      ],
      lines: [{ name: 'cable', from: 'house', to: 'sub', rOhm: 0.05, xOhm: 0.02, ampacityA: 100 }],
    };
    const result = powerFlow(createFeeder(spec));
    expect(result.converged).toBe(true);
    expect(result.lines[0]?.upstream).toBe('sub');
    expect(result.minVoltage.bus).toBe('house');
    // I ≈ 20.6 kVA / (√3·0.4 kV) ≈ 30 A; losses 3·I²·R ≈ 0.14 kW.
    expect(result.lines[0]?.currentA).toBeGreaterThan(29);
    expect(result.lines[0]?.currentA).toBeLessThan(32);
    expect(result.slackKw).toBeCloseTo(20 + result.lossKw, 9);
    const alone = powerFlow(
      createFeeder({ name: 'one', baseKv: 1, baseMva: 1, buses: [spec.buses[1] as never], lines: [] }),
    );
    expect(alone.converged).toBe(true);
    expect(alone.lossKw).toBe(0);
  });
});
