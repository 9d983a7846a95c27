/**
 * Forecasts for the optimizer, behind one small interface so that a better model (a weather service, a learned
 * model) can replace these without the optimizer noticing: load from a profile learned from the ledger's own history
 * plus persistence (load.ts), PV from a clear-sky model scaled by recent measurements (pv.ts).
 *
 * Sign conventions (those of the config and the simulator; a device that measures the other way gets sign -1):
 * - grid meter: W, + import (power flowing from the grid into the building);
 * - PV inverter: W, + producing;
 * - battery inverter: W, + discharging, - charging;
 * - EV charger and other controllable loads: W, + consuming.
 * The building's inflexible consumption (what the optimizer calls criticalLoadW) is what the meter saw plus what the
 * building's own sources supplied, minus what the loads the optimizer plans for itself drew:
 *
 *     consumption = meter + PV + battery - EV chargers - controllable loads
 *
 * which consumptionTerms() writes down from the building's devices. Forecasts are W per horizon interval, >= 0.
 */
import type { Horizon } from '../model.js';
import type { HistorySource, PowerSample, SeriesRef } from './history.js';
import { forecastLoad, type LoadForecastOptions, LocalTime, type LocalTimeSpec, learnLoadProfile } from './load.js';
import { forecastPv, type PvForecastOptions } from './pv.js';
import type { GeoLocation, PvPlantSpec } from './solar.js';

export interface SeriesForecast {
  /** Mean power per horizon interval, W. */
  readonly forecastW: number[];
  /** What the forecast rests on, in words (for `mgmc optimize`). */
  readonly basis: string;
}

export interface Forecaster {
  /** Inflexible consumption of `building` per interval of `horizon`, as known at `now`. */
  load(building: string, horizon: Horizon, now: number): SeriesForecast;
  /** AC output of PV plant `plant` per interval of `horizon`, as known at `now`. */
  pv(plant: string, horizon: Horizon, now: number): SeriesForecast;
}

/** One measured term of a building's consumption: consumption = Σ sign × reading. */
export interface LoadTerm extends SeriesRef {
  /** +1 (default) adds the reading, -1 subtracts it. */
  readonly sign?: number;
  /**
   * Count an interval without a reading of this point as 0 W instead of leaving the interval out (a PV inverter that
   * sleeps at night and does not answer). An outage in daylight is then counted as no production. Default false.
   */
  readonly zeroWhenMissing?: boolean;
}

export interface BuildingLoadSource extends LocalTimeSpec {
  /** The measured terms of its consumption (consumptionTerms() builds them); none: the default is all there is. */
  readonly terms: readonly LoadTerm[];
  /** Consumption assumed without history, W. */
  readonly defaultLoadW: number;
  /** Days of history the profile is learned from. Default 14. */
  readonly historyDays?: number;
  /** Age at which a day counts half, days. Default 7. */
  readonly halfLifeDays?: number;
  /** Days of each kind (weekday, weekend) needed to learn them apart. Default 2. */
  readonly minDaysPerKind?: number;
  /** Persistence settings (load.ts). */
  readonly forecast?: Omit<LoadForecastOptions, 'defaultLoadW' | 'sampleSpanMs' | 'localTime'>;
}

export interface PvPlantSource extends SeriesRef {
  /** +1 (default) when the point reads + producing, -1 when it reads the other way. */
  readonly sign?: number;
  readonly plant: PvPlantSpec;
  readonly location: GeoLocation;
  readonly options?: Omit<PvForecastOptions, 'sampleSpanMs'>;
}

export interface LedgerForecasterOptions {
  /** Measurements, usually a LedgerHistory over the agent database (history.ts). */
  readonly history: HistorySource;
  readonly buildings: Readonly<Record<string, BuildingLoadSource>>;
  readonly plants: Readonly<Record<string, PvPlantSource>>;
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/**
 * The measured terms of a building's consumption from its devices (the sign conventions above): the grid meter,
 * its PV inverters (0 W when they do not answer: they sleep at night), batteries, and the EV chargers and other
 * controllable loads the optimizer plans for itself and which therefore must not be forecast as inflexible load.
 */
export function consumptionTerms(devices: {
  readonly meter?: SeriesRef;
  readonly pv?: readonly SeriesRef[];
  readonly batteries?: readonly SeriesRef[];
  readonly controllableLoads?: readonly SeriesRef[];
}): LoadTerm[] {
  const ref = (r: SeriesRef) => ({ device: r.device, point: r.point });
  return [
    ...(devices.meter === undefined ? [] : [{ ...ref(devices.meter), sign: 1 }]),
    ...(devices.pv ?? []).map((r) => ({ ...ref(r), sign: 1, zeroWhenMissing: true })),
    ...(devices.batteries ?? []).map((r) => ({ ...ref(r), sign: 1 })),
    ...(devices.controllableLoads ?? []).map((r) => ({ ...ref(r), sign: -1 })),
  ];
}

/** A Forecaster that learns from `history` with the per-building and per-plant settings given. */
export function createLedgerForecaster(options: LedgerForecasterOptions): Forecaster {
  const { history, buildings, plants } = options;
  // One converter per building, so its cache of UTC offsets outlives a call.
  const localTimes = new Map<string, LocalTime>();
  for (const [name, b] of Object.entries(buildings)) {
    try {
      localTimes.set(name, new LocalTime(b));
    } catch (err) {
      throw new RangeError(`building '${name}': ${(err as Error).message}`);
    }
    if (!(b.defaultLoadW >= 0)) throw new RangeError(`building '${name}': defaultLoadW must be >= 0 W`);
  }
  for (const [name, p] of Object.entries(plants)) checkPlant(name, p);
  const lookUp = <T>(what: string, table: Readonly<Record<string, T>>, name: string): T => {
    const found = Object.hasOwn(table, name) ? table[name] : undefined;
    if (found === undefined) {
      const known = Object.keys(table);
      throw new Error(
        `no ${what} forecast is set up for '${name}' (${known.length > 0 ? `known: ${known.join(', ')}` : 'none is'}): ` +
          'check the name against the buildings section of the config',
      );
    }
    return found;
  };

  return {
    load(building, horizon, now) {
      const spec = lookUp('load', buildings, building);
      const days = spec.historyDays ?? 14;
      const from = now - days * DAY_MS;
      history.prefetch?.(spec.terms, from, now);
      const consumption = combineTerms(
        spec.terms.map((term) => ({ term, samples: history.samples(term.device, term.point, from, now) })),
      );
      const profile = learnLoadProfile(consumption, {
        stepMs: history.stepMs,
        timeZone: spec.timeZone,
        utcOffsetMinutes: spec.utcOffsetMinutes,
        now,
        days,
        halfLifeDays: spec.halfLifeDays,
        minDaysPerKind: spec.minDaysPerKind,
        localTime: localTimes.get(building),
      });
      const result = forecastLoad({
        horizon,
        profile,
        recent: consumption.filter((s) => s.t >= now - 2 * HOUR_MS),
        now,
        options: {
          ...spec.forecast,
          defaultLoadW: spec.defaultLoadW,
          sampleSpanMs: history.stepMs,
          localTime: localTimes.get(building),
        },
      });
      const formula = spec.terms
        .map((t, i) => {
          const name = `${t.device}.${t.point}`;
          const minus = (t.sign ?? 1) < 0;
          return i === 0 ? `${minus ? '-' : ''}${name}` : `${minus ? '-' : '+'} ${name}`;
        })
        .join(' ');
      const measured = spec.terms.length === 0 ? 'no meter configured' : `consumption = ${formula}`;
      return { forecastW: result.forecastW, basis: `${measured}: ${result.basis}` };
    },

    pv(plantName, horizon, now) {
      const spec = lookUp('PV', plants, plantName);
      const lookback = spec.options?.lookbackMs ?? 3 * HOUR_MS;
      const sign = spec.sign ?? 1;
      const recent = history
        .samples(spec.device, spec.point, now - lookback, now)
        .map((s) => ({ t: s.t, w: sign * s.w }));
      const result = forecastPv({
        horizon,
        plant: spec.plant,
        location: spec.location,
        recent,
        now,
        options: { ...spec.options, sampleSpanMs: history.stepMs },
      });
      return { forecastW: result.forecastW, basis: `${spec.device}.${spec.point}: ${result.basis}` };
    },
  };
}

/**
 * Consumption per interval from the terms' interval means: an interval counts when every term that must be there
 * has a sample (and at least one term has one).
 */
function combineTerms(inputs: readonly { term: LoadTerm; samples: readonly PowerSample[] }[]): PowerSample[] {
  if (inputs.length === 0) return [];
  const byTime = new Map<number, { sum: number; present: number; required: number }>();
  const requiredCount = inputs.filter((i) => i.term.zeroWhenMissing !== true).length;
  for (const { term, samples } of inputs) {
    const sign = term.sign ?? 1;
    const required = term.zeroWhenMissing === true ? 0 : 1;
    for (const s of samples) {
      const entry = byTime.get(s.t);
      if (entry === undefined) byTime.set(s.t, { sum: sign * s.w, present: 1, required });
      else {
        entry.sum += sign * s.w;
        entry.present++;
        entry.required += required;
      }
    }
  }
  const out: PowerSample[] = [];
  for (const [t, e] of byTime) if (e.required === requiredCount && e.present > 0) out.push({ t, w: e.sum });
  return out.sort((a, b) => a.t - b.t);
}

function checkPlant(name: string, p: PvPlantSource): void {
  const { peakWp, acRatingW, tiltDeg, azimuthDeg, performanceRatio } = p.plant;
  const problems: string[] = [];
  if (!(peakWp > 0)) problems.push(`peakWp must be > 0 (got ${peakWp})`);
  if (!(acRatingW > 0)) problems.push(`acRatingW must be > 0 (got ${acRatingW})`);
  if (!(tiltDeg >= 0 && tiltDeg <= 90)) problems.push(`tiltDeg must be 0..90 (got ${tiltDeg})`);
  if (!(azimuthDeg >= 0 && azimuthDeg <= 360)) problems.push(`azimuthDeg must be 0..360 (got ${azimuthDeg})`);
  if (!(performanceRatio > 0 && performanceRatio <= 1)) {
    problems.push(`performanceRatio must be in (0, 1] (got ${performanceRatio})`);
  }
  const { latitudeDeg, longitudeDeg } = p.location;
  if (!(latitudeDeg >= -90 && latitudeDeg <= 90)) problems.push(`latitudeDeg must be -90..90 (got ${latitudeDeg})`);
  if (!(longitudeDeg >= -180 && longitudeDeg <= 180)) {
    problems.push(`longitudeDeg must be -180..180 (got ${longitudeDeg})`);
  }
  if (problems.length > 0) throw new RangeError(`PV plant '${name}' (device ${p.device}): ${problems.join('; ')}`);
}
