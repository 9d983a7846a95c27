/**
 * PV forecast: the plant's clear-sky output × a scale learned from what it delivered in the last hours.
 *
 * The scale is the ratio of measured to clear-sky energy over the daylight samples of a look-back window (3 h by
 * default), bounded to [0, 1.2] (1.2: cloud-edge enhancement and a conservative config may push a clear hour above
 * the model). Clouds persist for a while but not for a day, so the scale relaxes towards a climatological default with
 * the lead time:
 *
 *     scale(lead) = default + (measured - default) · exp(-lead / tau),   tau = 3 h by default
 *
 * (after 1 h 72 % of the measured departure remains, after 6 h 14 %). Without enough daylight samples (at night,
 * after a restart, a broken meter) the default applies from the first interval on, and `basis` says so.
 *
 * Honest limits: a plant that was curtailed in the look-back window looks cloudy (the caller should not pass
 * curtailed samples); morning shading shows up as clouds until noon.
 */
import { type Horizon, stepStart } from '../model.js';
import { clearSkyPvW, type GeoLocation, meanOverInterval, type PvPlantSpec } from './solar.js';

export interface PowerSample {
  /** ms since the epoch (UTC): the instant, or the start of the interval the sample is the mean of. */
  readonly t: number;
  /** W. */
  readonly w: number;
}

export interface PvForecastOptions {
  /** Scale used when there are no daylight measurements, and what the measured scale relaxes to. Default 0.75. */
  readonly defaultScale?: number;
  /** Bounds of the learned scale. Default [0, 1.2]. */
  readonly scaleBounds?: readonly [number, number];
  /** How far back measurements count, ms. Default 3 h. */
  readonly lookbackMs?: number;
  /** Time constant of the relaxation from the measured scale to the default, ms. Default 3 h. */
  readonly persistenceTauMs?: number;
  /**
   * A sample counts as daylight when the clear-sky output at its time is at least this share of the plant's clear-sky
   * ceiling (min(AC rating, peakWp × performanceRatio)): at a low sun the model's error (horizon, shading, diffuse
   * light) is larger than any cloud. Default 0.05.
   */
  readonly minClearSkyFraction?: number;
  /** Fewest daylight samples for a measured scale. Default 2. */
  readonly minDaylightSamples?: number;
  /**
   * Interval each sample is the mean of, ms (0: instantaneous samples). With interval means the clear-sky
   * comparison is averaged over the same interval, the last one cut at `now`. Default 0.
   */
  readonly sampleSpanMs?: number;
  /** Midpoint samples per horizon interval for the clear-sky mean. Default 15 (1 min at 15-min steps). */
  readonly samplesPerStep?: number;
}

export interface PvForecastInput {
  readonly horizon: Horizon;
  readonly plant: PvPlantSpec;
  readonly location: GeoLocation;
  /** Measured AC output (W, + producing) of the last hours; any order, gaps allowed. */
  readonly recent: readonly PowerSample[];
  readonly now: number;
  readonly options?: PvForecastOptions;
}

export interface PvForecast {
  /** Mean AC output per horizon interval, W. */
  readonly forecastW: number[];
  /** The scale learned from the measurements (or the default when there were none), before relaxation. */
  readonly scale: number;
  /** What the forecast rests on, in words (for `mgmc optimize`). */
  readonly basis: string;
}

const HOUR_MS = 3_600_000;

export const PV_FORECAST_DEFAULTS = {
  defaultScale: 0.75,
  scaleBounds: [0, 1.2] as const,
  lookbackMs: 3 * HOUR_MS,
  persistenceTauMs: 3 * HOUR_MS,
  minClearSkyFraction: 0.05,
  minDaylightSamples: 2,
  sampleSpanMs: 0,
  samplesPerStep: 15,
} as const;

/** Clear-sky output per interval × a scale learned from the recent measurements, relaxing to a default. */
export function forecastPv(input: PvForecastInput): PvForecast {
  const { horizon, plant, location, now } = input;
  const o = withDefaults(PV_FORECAST_DEFAULTS, input.options);
  checkOptions(o);
  const clearSky = (t: number) => clearSkyPvW(plant, location, t);
  const learned = learnScale(
    input.recent,
    now,
    o,
    clearSky,
    Math.min(plant.acRatingW, plant.peakWp * plant.performanceRatio),
  );
  const scale = learned?.scale ?? o.defaultScale;
  const forecastW: number[] = new Array(horizon.steps);
  for (let i = 0; i < horizon.steps; i++) {
    const start = stepStart(horizon, i);
    const lead = Math.max(0, start + horizon.stepMs / 2 - now);
    const s = o.defaultScale + (scale - o.defaultScale) * Math.exp(-lead / o.persistenceTauMs);
    // A scale above 1 must not lift the plant past its inverter's rating.
    forecastW[i] = Math.min(plant.acRatingW, s * meanOverInterval(clearSky, start, horizon.stepMs, o.samplesPerStep));
  }
  const look = hours(o.lookbackMs);
  const basis =
    learned === undefined
      ? `clear-sky output × ${fmt(o.defaultScale)} (climatological default: no daylight measurements in the last ${look})`
      : `clear-sky output × ${fmt(scale)} measured over ${learned.samples} daylight sample(s) of the last ${look}` +
        `${learned.clipped ? ` (bounded from ${fmt(learned.raw)})` : ''}, ` +
        `relaxing to ${fmt(o.defaultScale)} with a ${hours(o.persistenceTauMs)} time constant`;
  return { forecastW, scale, basis };
}

interface LearnedScale {
  readonly scale: number;
  readonly raw: number;
  readonly clipped: boolean;
  readonly samples: number;
}

function learnScale(
  recent: readonly PowerSample[],
  now: number,
  o: Required<PvForecastOptions>,
  clearSky: (t: number) => number,
  ceilingW: number,
): LearnedScale | undefined {
  const threshold = o.minClearSkyFraction * ceilingW;
  let measuredWs = 0;
  let clearWs = 0;
  let samples = 0;
  for (const s of recent) {
    if (!(s.t >= now - o.lookbackMs && s.t < now) || !Number.isFinite(s.w)) continue;
    // The interval still running when the forecast is made is cut at `now`: its mean covers only that part.
    const span = o.sampleSpanMs > 0 ? Math.min(o.sampleSpanMs, now - s.t) : 0;
    const cs = span > 0 ? meanOverInterval(clearSky, s.t, span, Math.max(1, Math.round(span / 60_000))) : clearSky(s.t);
    if (cs < threshold) continue;
    const weight = span > 0 ? span : 1;
    measuredWs += Math.max(0, s.w) * weight;
    clearWs += cs * weight;
    samples++;
  }
  if (samples < o.minDaylightSamples || clearWs <= 0) return undefined;
  const raw = measuredWs / clearWs;
  const [lo, hi] = o.scaleBounds;
  const scale = Math.min(hi, Math.max(lo, raw));
  return { scale, raw, clipped: scale !== raw, samples };
}

function checkOptions(o: Required<PvForecastOptions>): void {
  const [lo, hi] = o.scaleBounds;
  if (!(lo >= 0 && hi >= lo))
    throw new RangeError(`PV forecast: scaleBounds must be 0 <= low <= high, got [${lo}, ${hi}]`);
  if (!(o.defaultScale >= 0)) throw new RangeError(`PV forecast: defaultScale must be >= 0, got ${o.defaultScale}`);
  if (!(o.persistenceTauMs > 0)) {
    throw new RangeError(`PV forecast: persistenceTauMs must be > 0, got ${o.persistenceTauMs}`);
  }
  if (!(o.lookbackMs > 0)) throw new RangeError(`PV forecast: lookbackMs must be > 0, got ${o.lookbackMs}`);
}

/** Defaults overridden by the options given; an option set to undefined keeps its default. */
function withDefaults<T extends object>(defaults: Required<T>, options: T | undefined): Required<T> {
  const out = { ...defaults };
  for (const [key, value] of Object.entries(options ?? {})) {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}

function fmt(x: number): string {
  return x.toFixed(2);
}

function hours(ms: number): string {
  const h = ms / HOUR_MS;
  return `${Number.isInteger(h) ? h : h.toFixed(1)} h`;
}
