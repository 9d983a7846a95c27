import { describe, expect, it } from 'vitest';
import type { Phases, PowerFlow } from '../../../../sim/physics/grid.js';
import { Meter } from '../../../../sim/physics/meter.js';
import { environment, HOUR, MONDAY } from './helpers.js';

/** A flow with a set power per phase that integrates itself exactly. */
class FixedFlow implements PowerFlow {
  p: Phases = [0, 0, 0];
  q: Phases = [0, 0, 0];
  private wh = 0;
  private t = MONDAY;
  constructor(readonly name: string) {}
  step(t: number) {
    this.wh += ((this.p[0] + this.p[1] + this.p[2]) * (t - this.t)) / 3_600_000;
    this.t = t;
  }
  phasePowerW() {
    return this.p;
  }
  phaseReactiveVar() {
    return this.q;
  }
  netEnergyWh() {
    return this.wh;
  }
}

describe('meter', () => {
  const setup = (invert = false) => {
    const env = environment();
    const load = new FixedFlow('load');
    const pv = new FixedFlow('pv');
    const meter = new Meter('m', [load, pv], { invert }, env);
    const step = (t: number) => {
      load.step(t);
      pv.step(t);
      meter.step(t);
    };
    return { load, pv, meter, step };
  };

  it('counts import positive and export separately', () => {
    const { load, pv, meter, step } = setup();
    load.p = [1000, 1000, 1000];
    pv.p = [-500, -500, -500];
    step(MONDAY + HOUR);
    let s = meter.snapshot();
    expect(s.activePowerW).toBe(1500);
    expect(s.importEnergyWh).toBeCloseTo(1500, 9);
    expect(s.exportEnergyWh).toBe(0);
    pv.p = [-2000, -2000, -2000];
    step(MONDAY + 2 * HOUR);
    s = meter.snapshot();
    expect(s.activePowerW).toBe(-3000);
    expect(s.importEnergyWh).toBeCloseTo(1500, 9);
    expect(s.exportEnergyWh).toBeCloseTo(3000, 9);
    expect(s.powerFactor).toBeCloseTo(-1, 12);
  });

  it('counts the other way round when inverted (a production meter)', () => {
    const { pv, meter, step } = setup(true);
    pv.p = [-1000, -1000, -1000];
    step(MONDAY + HOUR);
    const s = meter.snapshot();
    expect(s.activePowerW).toBe(3000);
    expect(s.importEnergyWh).toBeCloseTo(3000, 9);
  });

  it('derives per-phase currents, reactive power and power factor from unbalanced flows', () => {
    const { load, meter, step } = setup();
    load.p = [3000, 0, 800];
    load.q = [0, 0, 600];
    step(MONDAY + 1000);
    const s = meter.snapshot();
    expect(s.phaseCurrentA[0]).toBeCloseTo(3000 / s.phaseVoltageV[0], 9);
    expect(s.phaseCurrentA[1]).toBe(0);
    expect(s.phaseCurrentA[2]).toBeCloseTo(1000 / s.phaseVoltageV[2], 9);
    expect(s.reactivePowerVar).toBe(600);
    expect(s.apparentPowerVA).toBeCloseTo(4000, 9);
    expect(s.powerFactor).toBeCloseTo(3800 / 4000, 9);
    expect(s.lineVoltageV[0]).toBeGreaterThan(390);
    expect(s.lineVoltageV[0]).toBeLessThan(410);
  });

  it('has power factor 1 when nothing flows', () => {
    const { meter, step } = setup();
    step(MONDAY + 1000);
    expect(meter.snapshot().powerFactor).toBe(1);
    expect(meter.snapshot().phaseCurrentA).toEqual([0, 0, 0]);
  });
});
