import { describe, expect, it } from 'vitest';
import {
  checkFeeder,
  createFeeder,
  FeederError,
  type FeederSpec,
  type LineSpec,
  openSwitches,
  withSwitchStates,
} from '../../../agent/grid/feeder.js';
import { ieee33 } from '../../../agent/grid/ieee33.js';

/** A small feeder: 1 - 2 - 3, with 2 - 4 and a tie switch 3 - 4. */
function small(lines?: (base: LineSpec[]) => LineSpec[]): FeederSpec {
  const base: LineSpec[] = [
    { name: 'a', from: '1', to: '2', rOhm: 0.1, xOhm: 0.1, ampacityA: 200 },
    { name: 'b', from: '2', to: '3', rOhm: 0.2, xOhm: 0.1, ampacityA: 200, status: 'closed' },
    { name: 'c', from: '2', to: '4', rOhm: 0.2, xOhm: 0.1, ampacityA: 200, status: 'closed' },
    { name: 't', from: '3', to: '4', rOhm: 0.5, xOhm: 0.5, ampacityA: 100, status: 'open' },
  ];
  return {
    name: 'small',
    baseKv: 12.66,
    baseMva: 10,
    buses: ['1', '2', '3', '4'].map((name) => ({ name, pKw: name === '1' ? 0 : 100, qKvar: 50 })),
    lines: lines === undefined ? base : lines(base),
    mgmcs: [{ mgmc: 'mg-a', bus: '3' }],
  };
}

describe('feeder validation', () => {
  it('accepts the IEEE 33-bus feeder and the small one', () => {
    expect(checkFeeder(ieee33())).toEqual([]);
    const feeder = createFeeder(small());
    expect(feeder.slack).toBe('1');
    expect(feeder.voltageBand).toEqual({ min: 0.95, max: 1.05 });
    expect(openSwitches(feeder)).toEqual(['t']);
    // Parents point toward the slack: 3 and 4 hang off 2, 2 off 1.
    const { parent } = feeder.topology;
    expect([...parent]).toEqual([-1, 0, 1, 1]);
  });

  it('names the lines of a loop and the closed switches that can break it', () => {
    const spec = small((lines) => lines.map((l) => (l.name === 't' ? { ...l, status: 'closed' } : l)));
    expect(checkFeeder(spec)).toEqual([
      {
        path: ['lines', 3, 'status'],
        expected: 'a radial feeder (no loop of closed lines)',
        hint: 'line t (3-4) closes a loop of lines b, c, t; open one of the closed switches b, c, t',
      },
    ]);
    expect(() => createFeeder(spec)).toThrow(FeederError);
  });

  it('says when no line of a loop is a switch', () => {
    const spec = small((lines) => [...lines, { name: 'p', from: '1', to: '2', rOhm: 0.1, xOhm: 0.1, ampacityA: 200 }]);
    expect(checkFeeder(spec)).toEqual([
      {
        path: ['lines', 4],
        expected: 'a radial feeder (no loop of closed lines)',
        hint: 'line p (1-2) closes a loop of lines a, p; none of them is a switch: give one status: open, or remove it',
      },
    ]);
  });

  it('names the buses of an island and the switch that would connect it', () => {
    const spec = small((lines) => lines.map((l) => (l.name === 'c' ? { ...l, status: 'open' } : l)));
    expect(checkFeeder(spec)).toEqual([
      {
        path: ['buses', 3, 'name'],
        expected: 'a bus connected to the slack bus 1 through closed lines',
        hint: 'bus 4 forms an island; close one of the switches c, t',
      },
    ]);
  });

  it('reports unknown buses, duplicate names, negative and zero impedances all at once', () => {
    const spec: FeederSpec = {
      ...small((lines) => [
        { ...(lines[0] as LineSpec), to: '22' },
        { ...(lines[1] as LineSpec), rOhm: -0.2 },
        { ...(lines[2] as LineSpec), name: 'b', rOhm: 0, xOhm: 0 },
        { ...(lines[3] as LineSpec), ampacityA: 0 },
      ]),
      buses: [...small().buses, { name: '3', pKw: 1, qKvar: 1 }],
      mgmcs: [
        { mgmc: 'mg-a', bus: '3' },
        { mgmc: 'mg-a', bus: '5' },
      ],
    };
    expect(checkFeeder(spec)).toEqual([
      { path: ['buses', 4, 'name'], expected: 'a bus name used once', hint: 'bus 3 is also buses[2]' },
      {
        path: ['lines', 0, 'to'],
        expected: 'the name of a bus of the feeder',
        hint: "line a (1-22): no bus 22; did you mean '2'?",
      },
      { path: ['lines', 1, 'rOhm'], expected: 'a resistance of at least 0 ohm', hint: 'line b (2-3) has -0.2' },
      { path: ['lines', 2, 'name'], expected: 'a line name used once', hint: 'line b is also lines[1]' },
      {
        path: ['lines', 2],
        expected: 'a line with an impedance (r or x above 0)',
        hint: 'line b (2-4) has zero impedance; merge its two buses into one',
      },
      { path: ['lines', 3, 'ampacityA'], expected: 'line t (3-4): an ampacity (A) above 0', hint: 'got 0' },
      { path: ['mgmcs', 1, 'mgmc'], expected: 'each MGMC attached once', hint: 'mg-a is also attached at mgmcs[0]' },
      {
        path: ['mgmcs', 1, 'bus'],
        expected: 'the name of a bus of the feeder',
        hint: 'MGMC mg-a: no bus 5; buses: 1, 2, 3, 4',
      },
    ]);
  });

  it('checks base values, the slack bus and the voltage band', () => {
    const spec: FeederSpec = {
      ...small(),
      baseKv: 0,
      baseMva: -1,
      slack: 'sub',
      slackVoltagePu: 2,
      voltageBand: { min: 1.05, max: 0.95 },
    };
    expect(checkFeeder(spec).map((p) => [p.path.join('.'), p.expected, p.hint])).toEqual([
      ['baseKv', 'a base voltage (kV) above 0', 'got 0'],
      ['baseMva', 'a base power (MVA) above 0', 'got -1'],
      ['slackVoltagePu', 'a slack voltage from 0.5 to 1.5 pu', 'got 2'],
      ['voltageBand', 'a voltage band with 0 < min < max (pu)', 'got min 1.05, max 0.95'],
      ['slack', 'the name of a bus of the feeder', 'the slack bus: no bus sub; buses: 1, 2, 3, 4'],
    ]);
  });

  it('puts every problem in the FeederError message', () => {
    const spec = small((lines) => lines.map((l) => (l.name === 'a' ? { ...l, xOhm: -1 } : l)));
    expect(() => createFeeder(spec)).toThrow(
      'feeder small: 1 problem\n  lines[0].xOhm  a reactance of at least 0 ohm  line a (1-2) has -1',
    );
  });
});

describe('switching', () => {
  it('moves the open point and rebuilds the tree', () => {
    const feeder = createFeeder(small());
    const moved = withSwitchStates(feeder, { t: 'closed', c: 'open' });
    expect(openSwitches(moved)).toEqual(['c']);
    // 4 now hangs off 3.
    expect(moved.topology.parent[3]).toBe(2);
    expect(openSwitches(feeder)).toEqual(['t']);
  });

  it('refuses a state that loops, a line without a switch and an unknown line', () => {
    const feeder = createFeeder(small());
    expect(() => withSwitchStates(feeder, { t: 'closed' })).toThrow(/closes a loop of lines b, c, t/);
    expect(() => withSwitchStates(feeder, { a: 'open' })).toThrow(/line a has no switch/);
    expect(() => withSwitchStates(feeder, { zz: 'open' })).toThrow(/a line named zz/);
  });
});
