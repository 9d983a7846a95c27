import { describe, expect, it } from 'vitest';
import { PvInverter } from '../../../../sim/physics/pv.js';
import { solarNoonMs } from '../../../../sim/physics/solar.js';
import { DAY, environment, MONDAY, MUNICH, run } from './helpers.js';

const NOON = solarNoonMs(MONDAY, MUNICH.longitudeDeg);

function inverter(cloudiness = 0, params: Partial<ConstructorParameters<typeof PvInverter>[1]> = {}) {
  return new PvInverter('pv', { dcCapacityWp: 10_000, acRatingW: 10_000, ...params }, environment(MONDAY, cloudiness));
}

describe('PV inverter', () => {
  it('honours a power limit and reverts to 100 % when it is not re-sent within the timeout', () => {
    const pv = inverter();
    pv.step(NOON);
    const free = pv.snapshot();
    expect(free.status).toBe('mppt');
    expect(free.acPowerW).toBeGreaterThan(6000);
    pv.setPowerLimit({ pct: 30, revertTimeoutS: 600 });
    const limited: number[] = [];
    run(pv, NOON + 599_000, 1000, () => limited.push(pv.snapshot().acPowerW));
    for (const w of limited) expect(w).toBeCloseTo(3000, 6);
    const s = pv.snapshot();
    expect(s.status).toBe('throttled');
    expect(s.powerLimit?.active).toBe(true);
    expect(s.powerLimit?.remainingS).toBeCloseTo(1, 6);
    pv.step(NOON + 600_000);
    const after = pv.snapshot();
    expect(after.powerLimit?.active).toBe(false);
    expect(after.acPowerW).toBeGreaterThan(6000);
    expect(after.status).toBe('mppt');
  });

  it('integrates the limit exactly up to the revert instant, whatever the step', () => {
    const energyOver = (stepMs: number) => {
      const pv = inverter();
      pv.step(NOON);
      const before = pv.snapshot().lifetimeEnergyWh;
      pv.setPowerLimit({ pct: 20, revertTimeoutS: 90 });
      run(pv, NOON + 3_600_000, stepMs);
      return pv.snapshot().lifetimeEnergyWh - before;
    };
    const fine = energyOver(1000);
    const coarse = energyOver(3_600_000);
    expect(Math.abs(fine - coarse) / fine).toBeLessThan(1e-5);
  });

  it('keeps a limit that is not enabled, or has no timeout, as told', () => {
    const pv = inverter();
    pv.step(NOON);
    pv.setPowerLimit({ pct: 10, enabled: false });
    pv.step(NOON + 60_000);
    expect(pv.snapshot().acPowerW).toBeGreaterThan(6000);
    pv.setPowerLimit({ pct: 10 });
    pv.step(NOON + 5 * 3_600_000 - 3_600_000);
    expect(pv.snapshot().acPowerW).toBeLessThanOrEqual(1000);
    expect(() => pv.setPowerLimit({ pct: 120 })).toThrow(/pct/);
  });

  it('clips at the AC rating and reports throttled', () => {
    const pv = inverter(0, { acRatingW: 4000 });
    pv.step(NOON);
    const s = pv.snapshot();
    expect(s.acPowerW).toBe(4000);
    expect(s.availablePowerW).toBeGreaterThan(4000);
    expect(s.status).toBe('throttled');
  });

  it('delivers reactive power for a power-factor setpoint within its VA rating', () => {
    const pv = inverter();
    pv.step(NOON);
    pv.setPowerFactor({ pf: -0.9, revertTimeoutS: 60 });
    pv.step(NOON + 1000);
    const s = pv.snapshot();
    expect(s.reactivePowerVar).toBeLessThan(0);
    expect(s.apparentPowerVA).toBeLessThanOrEqual(10_000 + 1e-9);
    expect(Math.abs(s.powerFactor)).toBeGreaterThanOrEqual(0.9 - 1e-9);
    const i = s.phaseCurrentA[0];
    expect(i).toBeCloseTo(s.apparentPowerVA / 3 / s.phaseVoltageV[0], 6);
    pv.step(NOON + 61_000);
    expect(pv.snapshot().reactivePowerVar).toBe(0);
  });

  it('keeps a monotonic lifetime counter that starts at its initial value', () => {
    const pv = inverter(0.6, { initialEnergyWh: 1_000_000 });
    let last = pv.snapshot().lifetimeEnergyWh;
    expect(last).toBe(1_000_000);
    run(pv, MONDAY + DAY, 60_000, () => {
      const e = pv.snapshot().lifetimeEnergyWh;
      expect(e).toBeGreaterThanOrEqual(last);
      last = e;
    });
    expect(last).toBeGreaterThan(1_000_000 + 10_000);
    expect(pv.netEnergyWh()).toBeCloseTo(-(last - 1_000_000), 6);
  });

  it('gives the same day energy at 1 s and 60 s steps under clouds', () => {
    const day = (stepMs: number) => {
      const pv = inverter(0.5, { acRatingW: 8000 });
      run(pv, MONDAY + DAY, stepMs);
      return pv.snapshot().lifetimeEnergyWh;
    };
    const a = day(1000);
    const b = day(60_000);
    expect(Math.abs(a - b) / a).toBeLessThan(1e-4);
  });

  it('reports DC values consistent with the AC side and the grid voltage and frequency', () => {
    const pv = inverter();
    pv.step(NOON);
    const s = pv.snapshot();
    expect(s.dcPowerW).toBeCloseTo(s.acPowerW / 0.96, 6);
    expect(s.dcCurrentA * s.dcVoltageV).toBeCloseTo(s.dcPowerW, 6);
    expect(s.voltageV).toBeGreaterThan(220);
    expect(s.voltageV).toBeLessThan(240);
    expect(Math.abs(s.frequencyHz - 50)).toBeLessThan(0.2);
  });

  it('refuses to go back in time', () => {
    const pv = inverter();
    pv.step(NOON);
    expect(() => pv.step(NOON - 1)).toThrow(/backwards/);
  });
});
