/**
 * What the demo measured, as the HTML report takes it. The demo fills it while the day runs; report.ts renders it.
 * Plain data (no classes, no functions) so a run can also be saved as JSON and rendered again.
 */

export interface DemoReportData {
  readonly title: string;
  /** ISO 8601, wall clock. */
  readonly generatedAt: string;
  readonly options: {
    readonly durationHours: number;
    readonly mgmcs: number;
    readonly seed: number;
    readonly speed: number;
  };
  /** Wall-clock seconds the simulated period took. */
  readonly wallSeconds: number;
  /** First simulated instant (UTC ms) and the length of one schedule step. */
  readonly startMs: number;
  readonly stepMinutes: number;
  /** Currency of every cost and price in the report (prices per kWh). */
  readonly currency: string;
  readonly microgrids: readonly MicrogridReport[];
  readonly market: readonly MarketIntervalReport[];
  readonly feeder: FeederReport;
  readonly ledgers: readonly LedgerReport[];
  readonly dso: DsoReport;
  /** The end-of-run checks (chains verified, DSO holds every block, ...). */
  readonly checks: readonly { readonly name: string; readonly ok: boolean; readonly detail: string }[];
}

export interface MicrogridReport {
  readonly name: string;
  /** Feeder bus it connects at. */
  readonly bus: string;
  readonly address: string;
  /** One line for a reader: what the site has ("offices, 120 kWp PV, 200 kWh battery"). */
  readonly description: string;
  /** One sample per schedule step, in time order. Powers in W; positive = consumed from / fed into as named. */
  readonly steps: readonly StepSample[];
  /** Energy cost of the day without trading (grid tariff only) and with the market, in `currency`. */
  readonly costBaseline: number;
  readonly costActual: number;
  readonly soldWh: number;
  readonly boughtWh: number;
}

export interface StepSample {
  /** Step start, UTC ms. */
  readonly t: number;
  /** Import from the grid (> 0) or export (< 0) at the connection point, measured. */
  readonly gridW: number;
  readonly pvW: number;
  /** Battery discharge (> 0) or charge (< 0), measured. */
  readonly batteryW: number;
  readonly loadW: number;
  readonly evW: number;
  /** Battery state of charge, %; null without a battery. */
  readonly socPct: number | null;
  /** The optimizer's plan for this step (battery W, same sign as batteryW; grid W); null when no plan covered it. */
  readonly plannedBatteryW: number | null;
  readonly plannedGridW: number | null;
}

export interface MarketIntervalReport {
  /** Interval start, UTC ms. */
  readonly interval: number;
  readonly durationMinutes: number;
  /** Bargaining attempts (> 1 when the DSO capped positions and the interval was traded again). */
  readonly attempts: number;
  readonly rounds: number;
  readonly trades: number;
  /** Energy traded peer to peer in the standing attempt. */
  readonly volumeWh: number;
  /** Volume-weighted, lowest and highest trade price, currency/kWh; null when nothing was traded. */
  readonly priceAvg: number | null;
  readonly priceMin: number | null;
  readonly priceMax: number | null;
  /** Adjustment contracts the DSO sent for this interval. */
  readonly adjustments: number;
  /** The DSO's grid prices for the interval, currency/kWh. */
  readonly importPrice: number;
  readonly exportPrice: number;
  /** How the sequencer closed the interval: secure, no-check, attempt-cap, gate, no-participants. */
  readonly closedBy: string;
}

export interface FeederReport {
  readonly name: string;
  /** Bus names in feeder order (x axis of the voltage profile). */
  readonly buses: readonly string[];
  /** Voltage limits, pu. */
  readonly vMin: number;
  readonly vMax: number;
  /** Voltage profiles to compare, e.g. the worst interval before and after the DSO's caps. */
  readonly profiles: readonly { readonly label: string; readonly voltagesPu: readonly number[] }[];
  /** Buses where an MGMC connects (marked on the chart). */
  readonly mgmcBuses: readonly string[];
}

export interface LedgerReport {
  readonly name: string;
  readonly address: string;
  readonly blocksSigned: number;
  readonly records: number;
  /** Highest block the DSO has anchored in its chain. */
  readonly anchoredHeight: number;
  /** Blocks the DSO holds and verified, of this MGMC. */
  readonly heldByDso: number;
  /** The MGMC's own chain verified end to end (signatures, links, Merkle roots). */
  readonly chainOk: boolean;
}

export interface DsoReport {
  readonly chainHeight: number;
  readonly blocksReceived: number;
  readonly blocksVerified: number;
  readonly blocksRejected: number;
  readonly chainOk: boolean;
}
