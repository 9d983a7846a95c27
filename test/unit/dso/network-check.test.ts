/**
 * The caps LP of the DSO's network check: scenarios on the IEEE 33-bus feeder (exports raising the voltage above
 * 1.05 pu, an import overloading a line) and a hand-checkable 3-bus feeder, with the caps compared against the least
 * curtailment found by brute force with the full power flow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyCaps,
  checkNetwork,
  loadsWithPositions,
  type ReportedPosition,
} from '../../../agent/dso/network-check.js';
import { createFeeder, type Feeder, FeederError } from '../../../agent/grid/feeder.js';
import { ieee33 } from '../../../agent/grid/ieee33.js';
import { checkLimits } from '../../../agent/grid/limits.js';
import { type BusPowers, busLoads, powerFlow } from '../../../agent/grid/powerflow.js';
import { createInlineSolver, type Solver } from '../../../agent/optimizer/solver.js';

let solver: Solver;
beforeAll(async () => {
  solver = await createInlineSolver();
});
afterAll(async () => {
  await solver.close();
});

/** True when the full power flow with these positions keeps every limit. */
function secure(feeder: Feeder, base: BusPowers, positions: readonly ReportedPosition[], netW: number[]): boolean {
  const result = powerFlow(feeder, loadsWithPositions(feeder, base, positions, netW));
  return checkLimits(feeder, result).ok;
}

/** The largest magnitude (W, to 1 W) position j can keep, the others fixed, by bisection on the full power flow. */
function largestSecure(
  feeder: Feeder,
  base: BusPowers,
  positions: readonly ReportedPosition[],
  j: number,
  others: number[],
): number {
  const p = positions[j] as ReportedPosition;
  const sign = Math.sign(p.netW);
  const at = (magnitude: number) => {
    const w = [...others];
    w[j] = sign * magnitude;
    return secure(feeder, base, positions, w);
  };
  if (at(Math.abs(p.netW))) return Math.abs(p.netW);
  let low = 0;
  let high = Math.abs(p.netW);
  while (high - low > 1) {
    const mid = (low + high) / 2;
    if (at(mid)) low = mid;
    else high = mid;
  }
  return low;
}

describe('network check on the IEEE 33-bus feeder at half load', () => {
  const feeder = createFeeder(ieee33());
  const base = busLoads(feeder, { scale: 0.5 });

  it('sends no caps when the reported positions keep every limit', async () => {
    const positions = [
      { mgmc: 'a', bus: '18', netW: -300_000 },
      { mgmc: 'b', bus: '30', netW: 200_000 },
    ];
    const check = await checkNetwork(feeder, positions, solver, { base, interval: 1_000 });
    expect(check).toMatchObject({ status: 'secure', secure: true, caps: [], iterations: 0, interval: 1_000 });
    expect(check.before.ok).toBe(true);
  });

  it('caps the exporter that raises the voltage above 1.05 pu, leaves the others alone, and curtails least', async () => {
    const positions: ReportedPosition[] = [
      { mgmc: 'end', bus: '18', netW: -2_000_000 },
      { mgmc: 'mid', bus: '14', netW: -500_000 },
      { mgmc: 'buyer', bus: '30', netW: 300_000 },
    ];
    const check = await checkNetwork(feeder, positions, solver, { base });
    expect(check.before.violations.map((v) => v.kind)).toContain('overvoltage');
    expect(check.before.maxVoltage.pu).toBeGreaterThan(1.09);
    expect(check.status).toBe('secured');
    expect(check.after.ok).toBe(true);
    expect(check.after.maxVoltage.pu).toBeLessThanOrEqual(1.05);
    // The importer and the exporter nearer the substation keep their positions: no cap for them at all.
    expect(check.caps.map((c) => c.mgmc)).toEqual(['end']);
    const cap = check.caps[0];
    expect(cap).toMatchObject({ bus: '18', positionW: -2_000_000 });
    expect(cap?.maxImportW).toBeUndefined();
    expect(Number.isSafeInteger(cap?.maxExportW)).toBe(true);

    // Brute force with the full power flow: for each cut of `mid` (10 kW steps), the least cut of `end` that is
    // secure; the best total over all of them.
    let bestTotal = Number.POSITIVE_INFINITY;
    let bestMidCut = 0;
    for (let midCut = 0; midCut <= 500_000; midCut += 10_000) {
      const others = [-2_000_000, -500_000 + midCut, 300_000];
      const endKeeps = largestSecure(feeder, base, positions, 0, others);
      const total = 2_000_000 - endKeeps + midCut;
      if (total < bestTotal) {
        bestTotal = total;
        bestMidCut = midCut;
      }
    }
    expect(bestMidCut).toBe(0);
    // The LP's caps are secure (above), so they curtail at least the optimum; its margin (0.0002 pu) costs at most
    // 0.5 % more.
    expect(check.curtailedW).toBeGreaterThanOrEqual(bestTotal - 1);
    expect(check.curtailedW).toBeLessThanOrEqual(bestTotal * 1.005);
    // The capped positions really are secure with the full power flow.
    const capped = positions.map((p) => applyCaps(p.netW, check.caps.find((c) => c.mgmc === p.mgmc) ?? {}));
    expect(secure(feeder, base, positions, capped)).toBe(true);
  });

  it('caps the import that overloads a line at the end of a lateral to just below the ampacity', async () => {
    const positions: ReportedPosition[] = [
      { mgmc: 'factory', bus: '25', netW: 2_000_000 },
      { mgmc: 'solar', bus: '18', netW: -500_000 },
    ];
    const check = await checkNetwork(feeder, positions, solver, { base });
    expect(check.before.violations.some((v) => v.kind === 'overload' && v.element === 's24')).toBe(true);
    expect(check.status).toBe('secured');
    expect(check.caps.map((c) => c.mgmc)).toEqual(['factory']);
    const cap = check.caps[0];
    expect(cap?.maxExportW).toBeUndefined();
    const exact = largestSecure(feeder, base, positions, 0, [2_000_000, -500_000]);
    expect(cap?.maxImportW).toBeLessThanOrEqual(exact);
    expect(cap?.maxImportW).toBeGreaterThanOrEqual(exact * 0.995);
    expect(check.after.maxLoading?.pct).toBeLessThanOrEqual(100);
  });

  it('curtails the MGMC whose kW help most first, and a weight moves the curtailment to the cheaper one', async () => {
    // Both import on the branch to bus 33; the voltage there falls below 0.95 pu.
    const positions: ReportedPosition[] = [
      { mgmc: 'd30', bus: '30', netW: 1_000_000 },
      { mgmc: 'd33', bus: '33', netW: 800_000 },
    ];
    const plain = await checkNetwork(feeder, positions, solver, { base });
    expect(plain.status).toBe('secured');
    // A kW at bus 33 lowers V33 more than one at bus 30, so d33 is curtailed first (here: fully).
    const d33 = plain.caps.find((c) => c.mgmc === 'd33');
    expect(d33?.maxImportW).toBe(0);

    const weighted = await checkNetwork(
      feeder,
      [
        { ...(positions[0] as ReportedPosition), weight: 1 },
        { ...(positions[1] as ReportedPosition), weight: 50 },
      ],
      solver,
      { base },
    );
    expect(weighted.status).toBe('secured');
    const w33 = weighted.caps.find((c) => c.mgmc === 'd33');
    expect(w33 === undefined || (w33.maxImportW as number) > 0).toBe(true);
    expect(weighted.caps.find((c) => c.mgmc === 'd30')?.curtailedW).toBeGreaterThan(
      plain.caps.find((c) => c.mgmc === 'd30')?.curtailedW ?? 0,
    );
  });

  it('starts from a point with a solution when the reported positions have none', async () => {
    const full = busLoads(feeder);
    const positions = [{ mgmc: 'huge', bus: '30', netW: 9_000_000 }];
    expect(powerFlow(feeder, loadsWithPositions(feeder, full, positions)).converged).toBe(false);
    const check = await checkNetwork(feeder, positions, solver, { base });
    expect(check.before.violations[0]?.kind).toBe('not-converged');
    expect(check.secure).toBe(true);
    expect(check.after.ok).toBe(true);
  });

  it('reports an interval no caps can make secure, and still curtails what makes it worse', async () => {
    // Full base load: bus 18 is at 0.913 pu without any MGMC.
    const full = busLoads(feeder);
    const positions = [
      { mgmc: 'importer', bus: '17', netW: 100_000 },
      { mgmc: 'exporter', bus: '9', netW: -100_000 },
    ];
    const check = await checkNetwork(feeder, positions, solver, { base: full });
    expect(check.status).toBe('not-secure');
    expect(check.secure).toBe(false);
    expect(check.reason).toMatch(/even with every MGMC at 0 W/);
    expect(check.reason).toMatch(/bus 18/);
    expect(check.caps).toEqual([expect.objectContaining({ mgmc: 'importer', maxImportW: 0, curtailedW: 100_000 })]);
  });

  it('refuses positions it cannot place, naming them', async () => {
    const bad = checkNetwork(
      feeder,
      [
        { mgmc: 'x', bus: '99', netW: 1 },
        { mgmc: 'x', bus: '2', netW: Number.NaN },
      ],
      solver,
    );
    await expect(bad).rejects.toThrow(FeederError);
    await expect(bad).rejects.toThrow(/bus 99.*listed twice|listed twice[\s\S]*bus 99|bus 99[\s\S]*listed twice/);
  });
});

describe('network check on a 3-bus feeder (checkable by hand)', () => {
  // 1 (substation) — 2 — 3, equal lines. An export at bus 3 raises V3 about twice as much per kW as one at bus 2.
  const feeder = createFeeder({
    name: 'three',
    baseKv: 11,
    baseMva: 1,
    buses: [
      { name: '1', pKw: 0, qKvar: 0 },
      { name: '2', pKw: 100, qKvar: 30 },
      { name: '3', pKw: 100, qKvar: 30 },
    ],
    lines: [
      { name: 'a', from: '1', to: '2', rOhm: 2, xOhm: 1, ampacityA: 400 },
      { name: 'b', from: '2', to: '3', rOhm: 2, xOhm: 1, ampacityA: 400 },
    ],
  });
  const base = busLoads(feeder);

  it('curtails only the far exporter, by just what brings bus 3 back to 1.05 pu', async () => {
    const positions: ReportedPosition[] = [
      { mgmc: 'near', bus: '2', netW: -1_000_000 },
      { mgmc: 'far', bus: '3', netW: -2_000_000 },
    ];
    const before = powerFlow(feeder, loadsWithPositions(feeder, base, positions));
    expect(before.buses[2]?.vPu).toBeGreaterThan(1.05);
    const check = await checkNetwork(feeder, positions, solver, { base });
    expect(check.status).toBe('secured');
    expect(check.caps.map((c) => c.mgmc)).toEqual(['far']);
    // By hand (bisection on the full power flow): the export at bus 3 that puts V3 at exactly 1.05 pu.
    const exact = largestSecure(feeder, base, positions, 1, [-1_000_000, -2_000_000]);
    const cap = check.caps[0]?.maxExportW as number;
    expect(cap).toBeLessThanOrEqual(exact);
    // The LP keeps 0.0002 pu inside the band, about 7 kW of export at bus 3 here (0.6 %).
    expect(cap).toBeGreaterThan(exact - 8_000);
    const after = powerFlow(feeder, loadsWithPositions(feeder, base, positions, [-1_000_000, -cap]));
    expect(after.buses[2]?.vPu).toBeLessThanOrEqual(1.05);
    expect(after.buses[2]?.vPu).toBeGreaterThan(1.0497);
  });

  it('tightens a limit the linear caps missed, and converges to the same cap from any starting import', async () => {
    // Without margins the first LP lands on the linearized limit; linearized at a heavy import it is optimistic.
    const tuning = { base, voltageMarginPu: 0, loadingMarginPct: 0 };
    const import2 = [{ mgmc: 'far', bus: '3', netW: 2_000_000 }];
    const once = await checkNetwork(feeder, import2, solver, { ...tuning, maxIterations: 1 });
    expect(once.status).toBe('not-secure');
    expect(once.reason).toMatch(/still not secure after 1 iteration of caps and power flow \(bus 3: 0\.949\d pu/);
    expect(once.caps).toHaveLength(1);

    const exact = largestSecure(feeder, base, import2, 0, [0]);
    const caps: number[] = [];
    for (const netW of [1_500_000, 2_000_000, 3_000_000]) {
      const check = await checkNetwork(feeder, [{ mgmc: 'far', bus: '3', netW }], solver, tuning);
      expect(check.status).toBe('secured');
      expect(check.iterations).toBeGreaterThan(1);
      caps.push(check.caps[0]?.maxImportW as number);
    }
    for (const cap of caps) {
      expect(cap).toBeLessThanOrEqual(exact);
      expect(cap).toBeGreaterThan(exact * 0.999);
    }
  });
});
