/**
 * Config + present state + forecasts → the SiteModel the optimizer solves. Everything assumed for lack of a
 * measurement (no SoC reading, no history) is said in `notes`, which `mgmc optimize` prints, so a technician sees
 * what the plan rests on.
 */
import type { AgentConfig } from '../config/schema.js';
import { LocalClock, minutesOf } from './local-time.js';
import type {
  BuildingModel,
  CommittedTrade,
  EvSession,
  FlexibleLoad,
  Horizon,
  NetPositionCaps,
  SiteModel,
} from './model.js';
import { priceSeries } from './tariff.js';

export interface Forecast {
  readonly forecastW: readonly number[];
  /** In words: what the forecast rests on. */
  readonly basis: string;
}

export interface ForecastSource {
  /** Inflexible consumption of a building, W per interval. */
  load(building: string, horizon: Horizon, now: number): Forecast;
  /** AC output of the PV plant on `device`, W per interval. */
  pv(device: string, horizon: Horizon, now: number): Forecast;
}

/** What is known about the devices now (from the poller's latest readings, or nothing). */
export interface SiteState {
  /** State of charge, %, or undefined when there is no fresh reading. */
  batterySocPct(device: string): number | undefined;
  /** Whether a car is plugged in, or undefined when unknown. */
  evPlugged(device: string): boolean | undefined;
}

export interface SiteModelInputs {
  readonly now: number;
  readonly state: SiteState;
  readonly forecasts: ForecastSource;
  readonly trades?: readonly CommittedTrade[];
  readonly caps?: NetPositionCaps;
}

/** The horizon that starts with the interval containing `now` (aligned to the step in UTC). */
export function alignedHorizon(now: number, stepMinutes: number, horizonHours: number): Horizon {
  const stepMs = stepMinutes * 60_000;
  return { start: Math.floor(now / stepMs) * stepMs, stepMs, steps: Math.round((horizonHours * 60) / stepMinutes) };
}

const ASSUMED_SOC_PCT = 50;

export function buildSiteModel(config: AgentConfig, inputs: SiteModelInputs): { site: SiteModel; notes: string[] } {
  const opt = config.optimizer;
  const horizon = alignedHorizon(inputs.now, opt.stepMinutes, opt.horizonHours);
  const local = new LocalClock(opt.timeZone);
  const end = horizon.start + horizon.steps * horizon.stepMs;
  const notes: string[] = [];
  const tariffs = new Map(config.tariffs.map((t) => [t.name, t]));
  const buildings: BuildingModel[] = config.buildings.map((b) => {
    const tariff = tariffs.get(b.tariff);
    if (tariff === undefined) throw new Error(`building ${b.name}: tariff '${b.tariff}' is not declared under tariffs`);
    const load = inputs.forecasts.load(b.name, horizon, inputs.now);
    notes.push(`${b.name}: load ${load.basis}`);
    const pv = b.pv.map((p) => {
      const f = inputs.forecasts.pv(p.device, horizon, inputs.now);
      notes.push(`${b.name}: PV ${p.device} ${f.basis}`);
      return { name: p.device, forecastW: f.forecastW, curtailable: p.curtailable, ratedW: p.acRatingW };
    });
    const batteries = b.batteries.map((k) => {
      let soc = inputs.state.batterySocPct(k.device);
      if (soc === undefined) {
        soc = ASSUMED_SOC_PCT;
        notes.push(`${b.name}: battery ${k.device} has no state-of-charge reading; ${ASSUMED_SOC_PCT} % assumed`);
      }
      return {
        name: k.device,
        capacityWh: k.capacityWh,
        energyWh: (Math.min(100, Math.max(0, soc)) / 100) * k.capacityWh,
        socMinPct: k.socMinPct,
        socMaxPct: k.socMaxPct,
        reservePct: Math.max(k.reservePct, k.socMinPct),
        maxChargeW: k.maxChargeW,
        maxDischargeW: k.maxDischargeW,
        chargeEfficiency: k.chargeEfficiency,
        dischargeEfficiency: k.dischargeEfficiency,
        degradationCostPerKWh: k.degradationCostPerKWh,
        terminal: k.terminal,
      };
    });
    const evs: EvSession[] = [];
    for (const e of b.evChargers) {
      const plugged = inputs.state.evPlugged(e.device);
      if (plugged !== true) {
        notes.push(
          `${b.name}: EV charger ${e.device} ${plugged === false ? 'has no car' : 'state unknown; no car assumed'}`,
        );
        continue;
      }
      const departure = local.nextAt(inputs.now, e.departure);
      evs.push({
        name: e.device,
        maxPowerW: e.maxPowerW,
        arrival: inputs.now,
        departure,
        energyWh: e.energyWh,
        shortfallCostPerKWh: e.shortfallCostPerKWh,
      });
      notes.push(
        `${b.name}: EV at ${e.device} needs ${(e.energyWh / 1000).toFixed(1)} kWh by ${e.departure} local (configured)`,
      );
    }
    const flexibleLoads: FlexibleLoad[] = b.flexibleLoads.map((f) => {
      if (f.kind === 'curtailable') {
        return {
          name: f.name,
          kind: 'curtailable',
          maxPowerW: f.maxPowerW,
          baselineW: new Array<number>(horizon.steps).fill(f.baselineW ?? 0),
          maxShedFraction: f.maxShedFraction,
          costPerKWh: f.costPerKWh,
        };
      }
      const window = f.window ?? { from: '00:00', to: '24:00' };
      // Inside the window now: it runs from now; otherwise from the window's next opening.
      const startsIn = local.nextAt(horizon.start, window.from);
      const lengthMin = (minutesOf(window.to) - minutesOf(window.from) + 1440) % 1440 || 1440;
      const previousOpening = startsIn - 86_400_000;
      const open = previousOpening + lengthMin * 60_000 > horizon.start ? previousOpening : startsIn;
      return {
        name: f.name,
        kind: 'shiftable',
        maxPowerW: f.maxPowerW,
        energyWh: f.energyWh ?? 0,
        earliest: Math.max(open, horizon.start),
        latest: Math.min(open + lengthMin * 60_000, end),
        costPerKWh: f.costPerKWh,
      };
    });
    const curtailableBase = flexibleLoads.reduce(
      (s, f) => s + (f.kind === 'curtailable' ? (f.baselineW?.[0] ?? 0) : 0),
      0,
    );
    return {
      name: b.name,
      grid: {
        importLimitW: b.importLimitW,
        exportLimitW: b.exportLimitW,
        importPrice: priceSeries(tariff.import, horizon, local),
        exportPrice: priceSeries(tariff.export, horizon, local),
      },
      // The measured consumption includes what curtailable loads draw; they are modelled on their own.
      criticalLoadW: load.forecastW.map((w) => Math.max(0, w - curtailableBase)),
      pv,
      batteries,
      evs,
      flexibleLoads,
    };
  });
  return { site: { horizon, buildings, trades: inputs.trades ?? [], caps: inputs.caps ?? {} }, notes };
}
