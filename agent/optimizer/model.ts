/**
 * The site model the optimizer plans over: what the config says about each building's DERs, joined with forecasts,
 * prices, the present state (SoC, EV sessions) and the MGMC's market and DSO commitments. Plain data, no I/O, so a
 * model can be saved, exported as an LP file and solved anywhere.
 *
 * Units: power in W, energy in Wh, prices in currency per kWh (floats, e.g. 0.30), times in ms since the epoch
 * (UTC). Every per-interval series has exactly `horizon.steps` entries. Signed outputs (ledger records) convert to
 * integers; floats never reach a hash.
 */

export interface Horizon {
  /** Start of the first interval, ms UTC (aligned to stepMs). */
  readonly start: number;
  /** Interval length, ms (15 minutes by default). */
  readonly stepMs: number;
  /** Number of intervals (96 = one day at 15 minutes). */
  readonly steps: number;
}

export interface GridConnection {
  /** Largest import at the building's connection, W. */
  readonly importLimitW: number;
  /** Largest export at the building's connection, W (0: no feed-in allowed). */
  readonly exportLimitW: number;
  /** Price of energy taken from the grid, per kWh, per interval. */
  readonly importPrice: readonly number[];
  /** Price paid for energy fed into the grid, per kWh, per interval. */
  readonly exportPrice: readonly number[];
}

export interface PvPlant {
  readonly name: string;
  /** Expected AC output per interval, W (mean over the interval). */
  readonly forecastW: readonly number[];
  /** Whether the inverter may be told to produce less than it could (SunSpec 123 WMaxLimPct). */
  readonly curtailable: boolean;
  /** Inverter AC rating, W (for the dispatched percentage limit). */
  readonly ratedW: number;
}

export interface Battery {
  readonly name: string;
  readonly capacityWh: number;
  /** Stored energy now, Wh. */
  readonly energyWh: number;
  /** The BMS limits, % of capacity. */
  readonly socMinPct: number;
  readonly socMaxPct: number;
  /** Backup reserve the schedule never plans to go below, % (>= socMinPct). */
  readonly reservePct: number;
  readonly maxChargeW: number;
  readonly maxDischargeW: number;
  /** AC to cells and cells to AC, 0..1. */
  readonly chargeEfficiency: number;
  readonly dischargeEfficiency: number;
  /** Wear cost per kWh passed through the battery (charged plus discharged, each half), currency. */
  readonly degradationCostPerKWh: number;
  /**
   * The stored energy at the end of the horizon: `keep` at least what it holds now (a rolling horizon does not
   * sell the battery empty at midnight), `free` no condition.
   */
  readonly terminal: 'keep' | 'free';
}

export interface EvSession {
  readonly name: string;
  /** Largest charging power, W. */
  readonly maxPowerW: number;
  /** From when the car is plugged in, ms (clipped to the horizon). */
  readonly arrival: number;
  /** When the car leaves, ms; the energy must be in by then. */
  readonly departure: number;
  /** Energy still to charge before departure, Wh (AC side). */
  readonly energyWh: number;
  /** Cost per kWh not delivered by departure (makes an impossible request a shortfall, not a crash). */
  readonly shortfallCostPerKWh: number;
}

export interface FlexibleLoad {
  readonly name: string;
  /**
   * shiftable: `energyWh` anywhere within [earliest, latest) at up to maxPowerW (a dishwasher, a heat pump's
   * buffer); curtailable: `baselineW` may be reduced at `costPerKWh` (value of the comfort or production lost).
   */
  readonly kind: 'shiftable' | 'curtailable';
  readonly maxPowerW: number;
  /** shiftable */
  readonly energyWh?: number;
  readonly earliest?: number;
  readonly latest?: number;
  /** curtailable: planned consumption per interval, W. */
  readonly baselineW?: readonly number[];
  /** curtailable: largest share of the baseline that may be shed, 0..1. */
  readonly maxShedFraction?: number;
  readonly costPerKWh: number;
}

export interface BuildingModel {
  readonly name: string;
  readonly grid: GridConnection;
  /** Inflexible consumption (everything not modelled below), W per interval. */
  readonly criticalLoadW: readonly number[];
  readonly pv: readonly PvPlant[];
  readonly batteries: readonly Battery[];
  readonly evs: readonly EvSession[];
  readonly flexibleLoads: readonly FlexibleLoad[];
}

/** Energy the MGMC has sold (negative) or bought (positive) on the P2P market, per interval. */
export interface CommittedTrade {
  /** Index of the interval in the horizon. */
  readonly step: number;
  /** Mean power over the interval, W: + bought (flows in), - sold (flows out). */
  readonly powerW: number;
  /** Agreed price per kWh. */
  readonly price: number;
}

/** DSO caps on the MGMC's net position (import positive), W per interval; undefined: no cap. */
export interface NetPositionCaps {
  readonly maxImportW?: readonly (number | undefined)[];
  readonly maxExportW?: readonly (number | undefined)[];
}

export interface SiteModel {
  readonly horizon: Horizon;
  readonly buildings: readonly BuildingModel[];
  readonly trades: readonly CommittedTrade[];
  readonly caps: NetPositionCaps;
  /**
   * Optional P2P trading columns per interval (for price-response curves): at `price` the MGMC may buy or sell up
   * to `limitW` beyond its committed trades.
   */
  readonly market?: { readonly step: number; readonly price: number; readonly limitW: number }[];
}

/** Interval index → start time. */
export function stepStart(h: Horizon, step: number): number {
  return h.start + step * h.stepMs;
}

/** Interval length in hours (W × hours = Wh). */
export function stepHours(h: Horizon): number {
  return h.stepMs / 3_600_000;
}
