/**
 * The IEEE 33-bus feeder of Baran & Wu ("Network reconfiguration in distribution systems for loss reduction and load
 * balancing", IEEE Trans. Power Delivery 4(2), 1989): 12.66 kV, 33 buses, 32 sectionalizing lines and 5 tie lines,
 * 3715 kW / 2300 kvar of load. Impedances and loads as published (identical to MATPOWER's case33bw.m).
 *
 * Line k (1-based, as in the paper) is named `s<k>`: every line of the paper has a switch, so all 37 are switches;
 * s1-s32 are closed and the tie lines s33-s37 open, the paper's base configuration.
 *
 * The paper gives no thermal limits. The ampacities here are ours, in three classes sized at about 1.5-3x the
 * base-case current: 300 A for the trunk from the substation to bus 6 (s1-s5, base case 125-210 A), 150 A for the
 * main branches (s6-s8, s22-s23, s25-s29, base case 37-65 A), 100 A for the end laterals and the tie lines.
 */
import type { FeederSpec, LineSpec } from './feeder.js';

/** Published base-case results (Baran & Wu 1989, and every later paper that reproduces them). */
export const IEEE33_PUBLISHED = {
  lossKw: 202.67,
  minVoltagePu: 0.9131,
  minVoltageBus: '18',
  /** The loss-minimal radial configuration found in the literature (e.g. Shirmohammadi & Hong 1989). */
  bestOpenSwitches: ['s7', 's9', 's14', 's32', 's37'],
  bestLossKw: 139.55,
  bestMinVoltagePu: 0.9378,
} as const;

/** Bus number, P kW, Q kvar. */
const LOADS: readonly (readonly [number, number, number])[] = [
  [1, 0, 0],
  [2, 100, 60],
  [3, 90, 40],
  [4, 120, 80],
  [5, 60, 30],
  [6, 60, 20],
  [7, 200, 100],
  [8, 200, 100],
  [9, 60, 20],
  [10, 60, 20],
  [11, 45, 30],
  [12, 60, 35],
  [13, 60, 35],
  [14, 120, 80],
  [15, 60, 10],
  [16, 60, 20],
  [17, 60, 20],
  [18, 90, 40],
  [19, 90, 40],
  [20, 90, 40],
  [21, 90, 40],
  [22, 90, 40],
  [23, 90, 50],
  [24, 420, 200],
  [25, 420, 200],
  [26, 60, 25],
  [27, 60, 25],
  [28, 60, 20],
  [29, 120, 70],
  [30, 200, 600],
  [31, 150, 70],
  [32, 210, 100],
  [33, 60, 40],
];

/** From bus, to bus, r ohm, x ohm, ampacity A; line k is row k. */
const LINES: readonly (readonly [number, number, number, number, number])[] = [
  [1, 2, 0.0922, 0.047, 300],
  [2, 3, 0.493, 0.2511, 300],
  [3, 4, 0.366, 0.1864, 300],
  [4, 5, 0.3811, 0.1941, 300],
  // biome-ignore lint/suspicious/noApproximativeNumericConstant: the published reactance of line 5, not 1/√2
  [5, 6, 0.819, 0.707, 300],
  [6, 7, 0.1872, 0.6188, 150],
  [7, 8, 0.7114, 0.2351, 150],
  [8, 9, 1.03, 0.74, 150],
  [9, 10, 1.044, 0.74, 100],
  [10, 11, 0.1966, 0.065, 100],
  [11, 12, 0.3744, 0.1238, 100],
  [12, 13, 1.468, 1.155, 100],
  [13, 14, 0.5416, 0.7129, 100],
  [14, 15, 0.591, 0.526, 100],
  [15, 16, 0.7463, 0.545, 100],
  [16, 17, 1.289, 1.721, 100],
  [17, 18, 0.732, 0.574, 100],
  [2, 19, 0.164, 0.1565, 100],
  [19, 20, 1.5042, 1.3554, 100],
  [20, 21, 0.4095, 0.4784, 100],
  [21, 22, 0.7089, 0.9373, 100],
  [3, 23, 0.4512, 0.3083, 150],
  [23, 24, 0.898, 0.7091, 150],
  [24, 25, 0.896, 0.7011, 100],
  [6, 26, 0.203, 0.1034, 150],
  [26, 27, 0.2842, 0.1447, 150],
  [27, 28, 1.059, 0.9337, 150],
  [28, 29, 0.8042, 0.7006, 150],
  [29, 30, 0.5075, 0.2585, 150],
  [30, 31, 0.9744, 0.963, 100],
  [31, 32, 0.3105, 0.3619, 100],
  [32, 33, 0.341, 0.5302, 100],
  // Tie lines, open in the base configuration.
  [21, 8, 2, 2, 100],
  [9, 15, 2, 2, 100],
  [12, 22, 2, 2, 100],
  [18, 33, 0.5, 0.5, 100],
  [25, 29, 0.5, 0.5, 100],
];

const TIE_LINES_FROM = 33;

/** A fresh spec of the IEEE 33-bus feeder (callers may change their copy). */
export function ieee33(): FeederSpec {
  return {
    name: 'ieee33',
    baseKv: 12.66,
    baseMva: 10,
    slack: '1',
    slackVoltagePu: 1,
    voltageBand: { min: 0.95, max: 1.05 },
    buses: LOADS.map(([bus, pKw, qKvar]) => ({ name: String(bus), pKw, qKvar })),
    lines: LINES.map(
      ([from, to, rOhm, xOhm, ampacityA], i): LineSpec => ({
        name: `s${i + 1}`,
        from: String(from),
        to: String(to),
        rOhm,
        xOhm,
        ampacityA,
        status: i + 1 >= TIE_LINES_FROM ? 'open' : 'closed',
      }),
    ),
    mgmcs: [],
  };
}
