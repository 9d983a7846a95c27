import { describe, expect, it } from 'vitest';
import { createFeeder, type FeederSpec, openSwitches } from '../../../agent/grid/feeder.js';
import { IEEE33_PUBLISHED, ieee33 } from '../../../agent/grid/ieee33.js';
import { busLoads, powerFlow } from '../../../agent/grid/powerflow.js';
import { candidateExchanges, reconfigure } from '../../../agent/grid/reconfigure.js';

describe('reconfiguration by branch exchange', () => {
  const feeder = createFeeder(ieee33());

  it('finds the literature optimum of IEEE 33 when minimizing losses alone', () => {
    const chosen = reconfigure(feeder, { violationPenaltyKw: 0 });
    expect([...chosen.after.openSwitches].sort()).toEqual([...IEEE33_PUBLISHED.bestOpenSwitches].sort());
    expect(chosen.after.lossKw).toBeCloseTo(IEEE33_PUBLISHED.bestLossKw, 1);
    expect(chosen.after.minVoltage.pu).toBeCloseTo(IEEE33_PUBLISHED.bestMinVoltagePu, 4);
    expect(chosen.before.openSwitches).toEqual(['s33', 's34', 's35', 's36', 's37']);
    expect(chosen.before.lossKw).toBeCloseTo(202.677, 3);
    // Every exchange lowered the losses.
    let previous = chosen.before.lossKw;
    for (const e of chosen.exchanges) {
      expect(e.lossKw).toBeLessThan(previous);
      previous = e.lossKw;
    }
    expect(chosen.powerFlows).toBeGreaterThan(chosen.exchanges.length);
  });

  it('by default also weighs violations: fewer buses below the band for a little more loss', () => {
    const chosen = reconfigure(feeder);
    expect(chosen.after.lossKw).toBeLessThan(141);
    expect(chosen.after.minVoltage.pu).toBeGreaterThan(IEEE33_PUBLISHED.bestMinVoltagePu);
    expect(chosen.after.violations).toBeLessThan(chosen.before.violations);
    expect(chosen.after.cost).toBeLessThan(chosen.before.cost);
  });

  it('keeps every configuration radial and connected, the given feeder untouched', () => {
    const chosen = reconfigure(feeder, { violationPenaltyKw: 0 });
    const { order } = chosen.feeder.topology;
    // createFeeder checked it, and the tree reaches all 33 buses with 32 closed lines.
    expect(new Set(order).size).toBe(33);
    expect(chosen.feeder.lines.filter((l) => l.status !== 'open')).toHaveLength(32);
    expect(openSwitches(feeder)).toEqual(['s33', 's34', 's35', 's36', 's37']);
    expect(powerFlow(chosen.feeder).lossKw).toBeCloseTo(chosen.after.lossKw, 9);
  });

  it('lists only exchanges within the loop a tie closes, never a line without a switch', () => {
    const spec: FeederSpec = {
      name: 'ring',
      baseKv: 10,
      baseMva: 1,
      buses: [
        { name: '0', pKw: 0, qKvar: 0 },
        { name: '1', pKw: 100, qKvar: 20 },
        { name: '2', pKw: 300, qKvar: 60 },
        { name: '3', pKw: 100, qKvar: 20 },
      ],
      lines: [
        { name: 'a', from: '0', to: '1', rOhm: 3, xOhm: 3, ampacityA: 100 },
        { name: 'b', from: '1', to: '2', rOhm: 1, xOhm: 1, ampacityA: 100, status: 'closed' },
        { name: 'c', from: '0', to: '3', rOhm: 1, xOhm: 1, ampacityA: 100, status: 'closed' },
        { name: 't', from: '2', to: '3', rOhm: 1, xOhm: 1, ampacityA: 100, status: 'open' },
      ],
    };
    const ring = createFeeder(spec);
    expect(candidateExchanges(ring)).toEqual([
      { close: 't', open: 'b' },
      { close: 't', open: 'c' },
    ]);
    // Bus 2 (the big load) fed over the long line a: feeding it from the other side, over c and t, halves the losses.
    const chosen = reconfigure(ring, { violationPenaltyKw: 0 });
    expect(chosen.after.openSwitches).toEqual(['b']);
    expect(chosen.after.lossKw).toBeLessThan(chosen.before.lossKw);
  });

  it('keeps the configuration when nothing is better, and reconfigures for the loads given', () => {
    const optimum = reconfigure(feeder, { violationPenaltyKw: 0 }).feeder;
    const again = reconfigure(optimum, { violationPenaltyKw: 0 });
    expect(again.exchanges).toEqual([]);
    expect(again.after.openSwitches).toEqual(again.before.openSwitches);
    const light = reconfigure(feeder, { loads: busLoads(feeder, { scale: 0.5 }), violationPenaltyKw: 0 });
    expect(light.before.lossKw).toBeLessThan(60);
    expect(light.after.lossKw).toBeLessThan(light.before.lossKw);
  });
});
