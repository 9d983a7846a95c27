import { describe, expect, it } from 'vitest';
import { Battery, type BatteryParams } from '../../../../sim/physics/battery.js';
import { DAY, environment, HOUR, MONDAY, run } from './helpers.js';

function battery(params: Partial<BatteryParams> = {}) {
  return new Battery(
    'bat',
    { capacityWh: 10_000, maxChargeW: 5000, maxDischargeW: 4000, socMinPct: 10, socMaxPct: 90, ...params },
    environment(),
  );
}

describe('battery', () => {
  it('is idle without a setpoint and follows a direct power setpoint', () => {
    const b = battery({ selfDischargePctPerDay: 0 });
    b.step(MONDAY + HOUR);
    expect(b.snapshot().status).toBe('idle');
    expect(b.snapshot().socPct).toBe(50);
    b.setPower({ w: -2000 });
    b.step(MONDAY + 2 * HOUR);
    const s = b.snapshot();
    expect(s.status).toBe('charging');
    expect(s.powerW).toBe(-2000);
    expect(s.chargedEnergyWh).toBeCloseTo(2000, 9);
    expect(s.storedEnergyWh).toBeCloseTo(5000 + 2000 * 0.96, 9);
  });

  it('keeps SoC within its limits and stops exactly there, accounting for efficiency', () => {
    const b = battery({ selfDischargePctPerDay: 0 });
    b.setPower({ w: -99_999 });
    const socs: number[] = [];
    run(b, MONDAY + 3 * HOUR, 60_000, () => socs.push(b.snapshot().socPct));
    let s = b.snapshot();
    expect(s.status).toBe('full');
    expect(Math.abs(s.powerW)).toBe(0);
    expect(s.socPct).toBeCloseTo(90, 9);
    // 4000 Wh into the cells at 96 %: 4166.7 Wh from the grid, charged at the 5000 W limit.
    expect(s.chargedEnergyWh).toBeCloseTo(4000 / 0.96, 6);
    b.setPower({ w: 99_999 });
    run(b, MONDAY + 6 * HOUR, 60_000, () => socs.push(b.snapshot().socPct));
    s = b.snapshot();
    expect(s.status).toBe('empty');
    expect(s.powerW).toBe(0);
    expect(s.socPct).toBeCloseTo(10, 9);
    expect(s.dischargedEnergyWh).toBeCloseTo(8000 * 0.96, 6);
    for (const soc of socs) {
      expect(soc).toBeGreaterThanOrEqual(10 - 1e-9);
      expect(soc).toBeLessThanOrEqual(90 + 1e-9);
    }
    // A full cycle returns less than it took: the round trip loses 1 - 0.96².
    expect(s.dischargedEnergyWh / (s.chargedEnergyWh + 4000 / 0.96)).toBeCloseTo(0.96 * 0.96, 9);
  });

  it('clips setpoints at the power limits', () => {
    const b = battery();
    b.setPower({ w: 10_000 });
    b.step(MONDAY + 1000);
    expect(b.snapshot().powerW).toBe(4000);
    expect(b.snapshot().requestedPowerW).toBe(4000);
    b.setPower({ w: -10_000 });
    b.step(MONDAY + 2000);
    expect(b.snapshot().powerW).toBe(-5000);
  });

  it('reverts a direct setpoint to idle after its timeout', () => {
    const b = battery();
    b.setPower({ w: 3000, revertTimeoutS: 120 });
    b.step(MONDAY + 119_000);
    expect(b.snapshot().powerW).toBe(3000);
    b.step(MONDAY + 10 * 60_000);
    const s = b.snapshot();
    expect(s.powerW).toBe(0);
    expect(s.powerSetpoint?.active).toBe(false);
    expect(s.dischargedEnergyWh).toBeCloseTo((3000 * 120) / 3600, 9);
  });

  it('applies SunSpec 124 rate limits, forced charging through a negative OutWRte, and their revert', () => {
    const b = battery();
    b.setPower({ w: 4000 });
    b.setRates({ storCtlMod: 2, inWRtePct: 100, outWRtePct: 25, revertTimeoutS: 60 });
    b.step(MONDAY + 1000);
    expect(b.snapshot().powerW).toBe(1000);
    b.step(MONDAY + 60_000);
    expect(b.snapshot().powerW).toBe(4000);
    b.setPower({ w: 0 });
    b.setRates({ storCtlMod: 2, inWRtePct: 100, outWRtePct: -40 });
    b.step(MONDAY + 61_000);
    expect(b.snapshot().powerW).toBe(-1600);
    b.setRates({ storCtlMod: 1, inWRtePct: -50, outWRtePct: 100 });
    b.step(MONDAY + 62_000);
    expect(b.snapshot().powerW).toBe(2500);
    b.setRates({ storCtlMod: 1, inWRtePct: 10, outWRtePct: 100 });
    b.setPower({ w: -5000 });
    b.step(MONDAY + 63_000);
    expect(b.snapshot().powerW).toBe(-500);
    expect(() => b.setRates({ storCtlMod: 4, inWRtePct: 0, outWRtePct: 0 })).toThrow(/storCtlMod/);
  });

  it('self-discharges toward the minimum, never below it, and counts the loss', () => {
    const b = battery({ selfDischargePctPerDay: 1, socStartPct: 90 });
    run(b, MONDAY + 30 * DAY, HOUR);
    const s = b.snapshot();
    // 30 days at 1 %/day of the 8000 Wh above the minimum.
    const expected = 1000 + 8000 * 0.99 ** 30;
    expect(s.storedEnergyWh).toBeCloseTo(expected, 6);
    expect(s.selfDischargeEnergyWh).toBeCloseTo(9000 - expected, 6);
    expect(s.socPct).toBeGreaterThan(10);
  });

  it('holds a full battery with the small charge that offsets self-discharge', () => {
    const b = battery({ selfDischargePctPerDay: 1, socStartPct: 90 });
    b.setPower({ w: -1000 });
    run(b, MONDAY + DAY, HOUR);
    const s = b.snapshot();
    expect(s.status).toBe('full');
    expect(s.socPct).toBeCloseTo(90, 9);
    expect(s.chargedEnergyWh * 0.96).toBeCloseTo(s.selfDischargeEnergyWh, 6);
    expect(s.selfDischargeEnergyWh).toBeGreaterThan(70);
  });

  it('gives the same result at any step size', () => {
    const day = (stepMs: number) => {
      const b = battery({ selfDischargePctPerDay: 0.5 });
      const schedule: [number, number][] = [
        [2 * HOUR, -5000],
        [5 * HOUR, 4000],
        [9 * HOUR, -1234],
        [20 * HOUR, 2500],
      ];
      for (const [at, w] of schedule) {
        run(b, MONDAY + at, stepMs);
        b.setPower({ w, revertTimeoutS: 7000 });
      }
      run(b, MONDAY + DAY, stepMs);
      return b.snapshot();
    };
    const a = day(1000);
    const c = day(HOUR);
    expect(c.chargedEnergyWh).toBeCloseTo(a.chargedEnergyWh, 6);
    expect(c.dischargedEnergyWh).toBeCloseTo(a.dischargedEnergyWh, 6);
    expect(c.storedEnergyWh).toBeCloseTo(a.storedEnergyWh, 6);
  });

  it('rejects impossible parameters', () => {
    expect(() => battery({ socMinPct: 80, socMaxPct: 20 })).toThrow(/socMinPct/);
    expect(() => battery({ capacityWh: 0 })).toThrow(/capacityWh/);
    expect(() => battery({ chargeEfficiency: 1.2 })).toThrow(/chargeEfficiency/);
  });
});
