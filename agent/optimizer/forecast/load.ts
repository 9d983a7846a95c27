/**
 * Load forecast: a time-of-day profile learned from the building's own history, with the latest measured level
 * persisting for the next hours.
 *
 * - The profile is by LOCAL time of day (people get up at 7 local, whatever the UTC offset), one value per slot of
 *   `stepMs`, weekday and weekend apart once there are at least `minDaysPerKind` (2) days of each, otherwise one
 *   profile for all days. Every sample is weighted by 2^(-age / halfLifeDays) (7 days by default), so a change of
 *   habits (holidays, a new heat pump) shows within a week or two. Slots without any sample are interpolated
 *   linearly from their nearest filled neighbours, across midnight.
 * - Persistence: what the profile does not know (guests, a cold snap, a machine left running) shows in the latest
 *   level. The departure of the latest level from the profile is added to the profile and fades with the lead time:
 *
 *       forecast(i) = profile(i) + (level - profile at the level's time) · exp(-lead(i) / tau),   tau = 2 h by default
 *
 *   so after 2 h 37 % of the departure remains and after 6 h 5 %. Adding the departure (rather than blending the
 *   level itself in) keeps the profile's shape: at 16:30 the evening peak still comes at 18:00.
 * - No history: a flat configured default (with the persistence of a recent level, if there is one); `basis` says so.
 *
 * Local time comes from Intl.DateTimeFormat with an IANA time zone (DST included) or from a fixed UTC offset.
 */
import { type Horizon, stepStart } from '../model.js';
import type { PowerSample } from './pv.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** Local time of the site: an IANA zone (with DST, e.g. 'Europe/Berlin') or a fixed offset from UTC. */
export interface LocalTimeSpec {
  readonly timeZone?: string;
  /** Used when no timeZone is given; east of Greenwich positive (CET = 60). Default 0. */
  readonly utcOffsetMinutes?: number;
}

export interface LocalParts {
  /** Local calendar day, counted from 1970-01-01 local. */
  readonly day: number;
  /** ms since local midnight (wall clock). */
  readonly msOfDay: number;
  /** 0 Sunday .. 6 Saturday. */
  readonly weekday: number;
}

/**
 * Converts UTC instants to local wall-clock parts. Offsets are cached per quarter of an hour, the finest step at
 * which any zone changes its offset today, so a profile of 14 days costs ~1,300 Intl calls, not one per sample.
 */
export class LocalTime {
  readonly description: string;
  private readonly format: Intl.DateTimeFormat | undefined;
  private readonly fixedOffset: number;
  private readonly cache = new Map<number, number>();

  constructor(spec: LocalTimeSpec) {
    if (spec.timeZone !== undefined) {
      try {
        this.format = new Intl.DateTimeFormat('en-US', {
          timeZone: spec.timeZone,
          hourCycle: 'h23',
          year: 'numeric',
          month: 'numeric',
          day: 'numeric',
          hour: 'numeric',
          minute: 'numeric',
          second: 'numeric',
        });
      } catch (err) {
        throw new RangeError(
          `unknown time zone ${JSON.stringify(spec.timeZone)} (${(err as Error).message}): use an IANA name such as ` +
            "'Europe/Berlin', or a fixed utcOffsetMinutes",
        );
      }
      this.description = spec.timeZone;
      this.fixedOffset = 0;
    } else {
      const offset = spec.utcOffsetMinutes ?? 0;
      if (!(Number.isFinite(offset) && Math.abs(offset) <= 18 * 60)) {
        throw new RangeError(`utcOffsetMinutes must be between -1080 and 1080, got ${offset}`);
      }
      this.format = undefined;
      this.fixedOffset = offset;
      const sign = offset < 0 ? '-' : '+';
      const abs = Math.abs(offset);
      this.description = `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
    }
  }

  /** Offset of local time from UTC at instant t, minutes (east positive). */
  offsetMinutes(t: number): number {
    if (this.format === undefined) return this.fixedOffset;
    const key = Math.floor(t / 900_000);
    let offset = this.cache.get(key);
    if (offset === undefined) {
      offset = this.lookUp(key * 900_000);
      if (this.cache.size > 100_000) this.cache.clear();
      this.cache.set(key, offset);
    }
    return offset;
  }

  parts(t: number): LocalParts {
    const local = t + this.offsetMinutes(t) * 60_000;
    const day = Math.floor(local / DAY_MS);
    // 1970-01-01 was a Thursday.
    return { day, msOfDay: local - day * DAY_MS, weekday: (((day + 4) % 7) + 7) % 7 };
  }

  private lookUp(t: number): number {
    const fields: Record<string, number> = {};
    for (const part of (this.format as Intl.DateTimeFormat).formatToParts(t)) {
      if (part.type !== 'literal') fields[part.type] = Number(part.value);
    }
    const wall = Date.UTC(
      fields.year ?? 1970,
      (fields.month ?? 1) - 1,
      fields.day ?? 1,
      fields.hour ?? 0,
      fields.minute ?? 0,
      fields.second ?? 0,
    );
    return Math.round((wall - Math.floor(t / 1000) * 1000) / 60_000);
  }
}

export interface LoadProfileOptions extends LocalTimeSpec {
  /** Slot length, ms; must divide a day (15 min by default is what the history gives). */
  readonly stepMs: number;
  /** The time the profile is learned at: samples in [now - days, now) count. */
  readonly now: number;
  /** Days of history used. Default 14. */
  readonly days?: number;
  /** Age at which a sample counts half, days. Default 7. */
  readonly halfLifeDays?: number;
  /** Days of each kind (weekday, weekend) needed to learn them apart. Default 2. */
  readonly minDaysPerKind?: number;
  /** A converter for the same zone to reuse (its offset cache), e.g. one per building held by the forecaster. */
  readonly localTime?: LocalTime;
}

/** Consumption by local time of day, W per slot. Plain data: it can be logged, saved and compared. */
export interface LoadProfile {
  readonly stepMs: number;
  readonly timeZone: string | undefined;
  readonly utcOffsetMinutes: number | undefined;
  /** True when weekdays and weekends were learned apart; otherwise both arrays are the same all-days profile. */
  readonly split: boolean;
  /** W per slot, slot 0 starting at local midnight (empty when there were no samples). */
  readonly weekday: readonly number[];
  readonly weekend: readonly number[];
  /** Local days that contributed samples, per kind. */
  readonly days: { readonly weekday: number; readonly weekend: number };
  /** Samples used (0: no history; the forecast falls back to its default). */
  readonly samples: number;
  /** Slots that had no sample and were interpolated from their neighbours. */
  readonly interpolatedSlots: number;
  /** Days of history and half-life it was learned with. */
  readonly historyDays: number;
  readonly halfLifeDays: number;
}

const isWeekend = (weekday: number) => weekday === 0 || weekday === 6;

/**
 * Learns the time-of-day profile of `samples` (consumption, W; interval means keyed by interval start, or instants).
 * Samples outside [now - days, now) and non-finite values are ignored, so gaps simply count less.
 */
export function learnLoadProfile(samples: readonly PowerSample[], options: LoadProfileOptions): LoadProfile {
  const stepMs = options.stepMs;
  if (!(Number.isInteger(stepMs) && stepMs > 0 && DAY_MS % stepMs === 0)) {
    throw new RangeError(`load profile: stepMs must divide a day into whole slots, got ${stepMs}`);
  }
  const days = options.days ?? 14;
  const halfLifeDays = options.halfLifeDays ?? 7;
  const minDays = options.minDaysPerKind ?? 2;
  if (!(days > 0)) throw new RangeError(`load profile: days must be > 0, got ${days}`);
  if (!(halfLifeDays > 0)) throw new RangeError(`load profile: halfLifeDays must be > 0, got ${halfLifeDays}`);
  const local = options.localTime ?? new LocalTime(options);
  const slots = DAY_MS / stepMs;
  const acc = {
    weekday: { sum: new Float64Array(slots), weight: new Float64Array(slots), days: new Set<number>() },
    weekend: { sum: new Float64Array(slots), weight: new Float64Array(slots), days: new Set<number>() },
  };
  const from = options.now - days * DAY_MS;
  const decayPerMs = Math.LN2 / (halfLifeDays * DAY_MS);
  let used = 0;
  for (const s of samples) {
    if (!(s.t >= from && s.t < options.now) || !Number.isFinite(s.w)) continue;
    const p = local.parts(s.t);
    const kind = isWeekend(p.weekday) ? acc.weekend : acc.weekday;
    const slot = Math.floor(p.msOfDay / stepMs);
    const weight = Math.exp(-(options.now - s.t) * decayPerMs);
    kind.sum[slot] = (kind.sum[slot] as number) + weight * s.w;
    kind.weight[slot] = (kind.weight[slot] as number) + weight;
    kind.days.add(p.day);
    used++;
  }
  const base = {
    stepMs,
    timeZone: options.timeZone,
    utcOffsetMinutes: options.timeZone === undefined ? (options.utcOffsetMinutes ?? 0) : undefined,
    days: { weekday: acc.weekday.days.size, weekend: acc.weekend.days.size },
    samples: used,
    historyDays: days,
    halfLifeDays,
  };
  if (used === 0) return { ...base, split: false, weekday: [], weekend: [], interpolatedSlots: 0 };
  const split = acc.weekday.days.size >= minDays && acc.weekend.days.size >= minDays;
  if (split) {
    const weekday = fillSlots(acc.weekday.sum, acc.weekday.weight);
    const weekend = fillSlots(acc.weekend.sum, acc.weekend.weight);
    return {
      ...base,
      split,
      weekday: weekday.values,
      weekend: weekend.values,
      interpolatedSlots: weekday.filled + weekend.filled,
    };
  }
  const sum = acc.weekday.sum.map((x, i) => x + (acc.weekend.sum[i] as number));
  const weight = acc.weekday.weight.map((x, i) => x + (acc.weekend.weight[i] as number));
  const all = fillSlots(sum, weight);
  return { ...base, split, weekday: all.values, weekend: all.values, interpolatedSlots: all.filled };
}

/** Weighted means per slot; empty slots interpolated linearly between the nearest filled ones, around the clock. */
function fillSlots(sum: Float64Array, weight: Float64Array): { values: number[]; filled: number } {
  const n = sum.length;
  const values: number[] = new Array(n);
  const known: number[] = [];
  for (let i = 0; i < n; i++) {
    const w = weight[i] as number;
    if (w > 0) {
      values[i] = (sum[i] as number) / w;
      known.push(i);
    }
  }
  if (known.length === 0) return { values: new Array(n).fill(0), filled: n };
  let filled = 0;
  for (let k = 0; k < known.length; k++) {
    const a = known[k] as number;
    const b = known[(k + 1) % known.length] as number;
    const gap = (b - a + n) % n || n; // one known slot: the gap is the whole day
    const va = values[a] as number;
    const vb = values[b] as number;
    for (let j = 1; j < gap; j++) {
      values[(a + j) % n] = va + ((vb - va) * j) / gap;
      filled++;
    }
  }
  return { values, filled };
}

export interface LoadForecastOptions {
  /** Consumption assumed without history, W. */
  readonly defaultLoadW: number;
  /** Time constant of the persistence of the latest level's departure from the profile, ms. Default 2 h. */
  readonly persistenceTauMs?: number;
  /** Samples this far back from `now` make up the latest level, ms. Default 30 min. */
  readonly levelWindowMs?: number;
  /** A latest level older than this is not used, ms. Default 1 h. */
  readonly maxLevelAgeMs?: number;
  /** Interval each recent sample is the mean of, ms (0: instants). Default 0. */
  readonly sampleSpanMs?: number;
  /** A converter for the profile's zone to reuse (its offset cache). */
  readonly localTime?: LocalTime;
}

export interface LoadForecastInput {
  readonly horizon: Horizon;
  /** Undefined, or a profile of 0 samples: no history. */
  readonly profile: LoadProfile | undefined;
  /** Measured consumption of the last hour or so, W. */
  readonly recent: readonly PowerSample[];
  readonly now: number;
  readonly options: LoadForecastOptions;
}

export interface LoadForecast {
  /** Mean consumption per horizon interval, W. */
  readonly forecastW: number[];
  /** What the forecast rests on, in words (for `mgmc optimize`). */
  readonly basis: string;
}

/** Profile (or default) per horizon interval plus the fading departure of the latest measured level. */
export function forecastLoad(input: LoadForecastInput): LoadForecast {
  const { horizon, now } = input;
  const o = input.options;
  const tau = o.persistenceTauMs ?? 2 * HOUR_MS;
  const window = o.levelWindowMs ?? 30 * 60_000;
  const maxAge = o.maxLevelAgeMs ?? HOUR_MS;
  const span = o.sampleSpanMs ?? 0;
  if (!(o.defaultLoadW >= 0)) throw new RangeError(`load forecast: defaultLoadW must be >= 0, got ${o.defaultLoadW}`);
  if (!(tau > 0)) throw new RangeError(`load forecast: persistenceTauMs must be > 0, got ${tau}`);
  const profile = input.profile !== undefined && input.profile.samples > 0 ? input.profile : undefined;
  const local = profile === undefined ? undefined : (o.localTime ?? new LocalTime(profile));
  const baseAt = (t: number): number => {
    if (profile === undefined || local === undefined) return o.defaultLoadW;
    const p = local.parts(t);
    const values = isWeekend(p.weekday) ? profile.weekend : profile.weekday;
    return values[Math.floor(p.msOfDay / profile.stepMs)] ?? o.defaultLoadW;
  };

  // The latest level: a span-weighted mean of the samples in the window, each compared with the profile at its own
  // time, so a level taken across a step of the profile is not mistaken for a departure.
  let weightSum = 0;
  let levelSum = 0;
  let baseSum = 0;
  let latest = Number.NEGATIVE_INFINITY;
  for (const s of input.recent) {
    if (!(s.t >= now - window && s.t < now) || !Number.isFinite(s.w)) continue;
    const covered = span > 0 ? Math.min(span, now - s.t) : 0;
    const weight = covered > 0 ? covered : 1;
    weightSum += weight;
    levelSum += weight * s.w;
    baseSum += weight * baseAt(s.t + covered / 2);
    latest = Math.max(latest, s.t + covered);
  }
  const persistence =
    weightSum > 0 && now - latest <= maxAge
      ? { level: levelSum / weightSum, departure: (levelSum - baseSum) / weightSum, latest }
      : undefined;

  const forecastW: number[] = new Array(horizon.steps);
  for (let i = 0; i < horizon.steps; i++) {
    const mid = stepStart(horizon, i) + horizon.stepMs / 2;
    let w = baseAt(mid);
    if (persistence !== undefined) {
      w += persistence.departure * Math.exp(-Math.max(0, mid - persistence.latest) / tau);
    }
    forecastW[i] = Math.max(0, w);
  }

  const what =
    profile === undefined
      ? `no history: default ${Math.round(o.defaultLoadW)} W`
      : `${profile.split ? 'weekday/weekend' : 'all-days'} profile by local time (${local?.description}) learned from ` +
        `${profile.days.weekday + profile.days.weekend} day(s) of history (${profile.samples} samples, half-life ` +
        `${profile.halfLifeDays} d${profile.interpolatedSlots > 0 ? `, ${profile.interpolatedSlots} empty slot(s) interpolated` : ''})`;
  const level =
    persistence === undefined
      ? '; no recent measurement to persist'
      : `; latest level ${Math.round(persistence.level)} W (${signed(persistence.departure)} W vs ` +
        `${profile === undefined ? 'the default' : 'the profile'}) fading with a ${fmtHours(tau)} time constant`;
  return { forecastW, basis: what + level };
}

function signed(x: number): string {
  const r = Math.round(x);
  return r >= 0 ? `+${r}` : `${r}`;
}

function fmtHours(ms: number): string {
  const h = ms / HOUR_MS;
  return `${Number.isInteger(h) ? h : h.toFixed(1)} h`;
}
