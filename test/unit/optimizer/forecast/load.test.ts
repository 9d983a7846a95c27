/**
 * The load forecast: a local time-of-day profile learned from history (weekday/weekend, recency weighting, gaps,
 * empty slots, DST) and the fading persistence of the latest measured level.
 */
import { describe, expect, it } from 'vitest';
import {
  forecastLoad,
  type LoadProfile,
  LocalTime,
  learnLoadProfile,
} from '../../../../agent/optimizer/forecast/load.js';
import type { PowerSample } from '../../../../agent/optimizer/forecast/pv.js';
import type { Horizon } from '../../../../agent/optimizer/model.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const STEP = 15 * MIN;
const BERLIN = 'Europe/Berlin';

/** Local hour (fractional) and weekday in Berlin, from Intl directly: an independent check of LocalTime. */
function berlin(t: number): { hour: number; weekend: boolean } {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: BERLIN,
    hourCycle: 'h23',
    hour: 'numeric',
    minute: 'numeric',
    weekday: 'short',
  }).formatToParts(t);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { hour: Number(get('hour')) + Number(get('minute')) / 60, weekend: ['Sat', 'Sun'].includes(get('weekday')) };
}

/** A household: morning and evening peaks on weekdays, a broad midday hump at weekends. W by local hour. */
function shape(hour: number, weekend: boolean): number {
  if (weekend) return 500 + 1500 * Math.exp(-(((hour - 12) / 3) ** 2));
  return 400 + 1200 * Math.exp(-(((hour - 7.5) / 1) ** 2)) + 1800 * Math.exp(-(((hour - 19) / 1.5) ** 2));
}

/** Deterministic noise in [-1, 1). */
function noise(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 31 - 1;
  };
}

/** 15-min means of the household over [from, to) with ±15 % noise, local time at each interval's middle. */
function household(from: number, to: number, seed = 7, skip: (t: number) => boolean = () => false): PowerSample[] {
  const rnd = noise(seed);
  const out: PowerSample[] = [];
  for (let t = from; t < to; t += STEP) {
    const r = rnd();
    if (skip(t)) continue;
    const { hour, weekend } = berlin(t + STEP / 2);
    out.push({ t, w: shape(hour, weekend) * (1 + 0.15 * r) });
  }
  return out;
}

/** The profile's value for the local slot that contains instant t. */
function profileAt(p: LoadProfile, t: number): number {
  const parts = new LocalTime(p).parts(t);
  const values = parts.weekday === 0 || parts.weekday === 6 ? p.weekend : p.weekday;
  return values[Math.floor(parts.msOfDay / p.stepMs)] as number;
}

describe('LocalTime', () => {
  it('follows the DST changes of Europe/Berlin', () => {
    const local = new LocalTime({ timeZone: BERLIN });
    expect(local.offsetMinutes(Date.UTC(2026, 2, 29, 0, 59))).toBe(60);
    expect(local.offsetMinutes(Date.UTC(2026, 2, 29, 1, 0))).toBe(120);
    expect(local.offsetMinutes(Date.UTC(2026, 9, 25, 0, 59))).toBe(120);
    expect(local.offsetMinutes(Date.UTC(2026, 9, 25, 1, 0))).toBe(60);
    // 2026-03-29 01:30 UTC is 03:30 CEST on a Sunday.
    const p = local.parts(Date.UTC(2026, 2, 29, 1, 30));
    expect(p.msOfDay).toBe(3.5 * HOUR);
    expect(p.weekday).toBe(0);
  });

  it('takes a fixed offset, and says what is wrong with an unknown zone', () => {
    const p = new LocalTime({ utcOffsetMinutes: 330 }).parts(Date.UTC(2026, 0, 1, 20, 0));
    expect(p.msOfDay).toBe(1.5 * HOUR); // 01:30 in India, the next day
    expect(p.weekday).toBe(5); // Friday 2 January 2026
    expect(() => new LocalTime({ timeZone: 'Europe/Atlantis' })).toThrow(/unknown time zone "Europe\/Atlantis".*IANA/);
  });
});

describe('learnLoadProfile', () => {
  // Monday 2026-05-18 00:00 Berlin; 14 days back from then.
  const now = Date.UTC(2026, 4, 17, 22);

  it('recovers the weekday and weekend shapes from 14 noisy days with gaps', () => {
    // A gateway outage of half a day and a lost hour every day: gaps only count less.
    const skip = (t: number) => (t >= now - 5 * DAY && t < now - 4.5 * DAY) || (t / HOUR) % 24 === 3;
    const samples = household(now - 14 * DAY, now, 7, skip);
    const p = learnLoadProfile(samples, { stepMs: STEP, timeZone: BERLIN, now });
    expect(p.split).toBe(true);
    expect(p.days).toEqual({ weekday: 10, weekend: 4 });
    expect(p.weekday).toHaveLength(96);
    for (let slot = 0; slot < 96; slot++) {
      const hour = (slot + 0.5) / 4;
      // 10 (resp. 4) days of ±15 % uniform noise: the mean is within ~10 % (weekend: fewer days).
      expect(Math.abs((p.weekday[slot] as number) / shape(hour, false) - 1)).toBeLessThan(0.1);
      expect(Math.abs((p.weekend[slot] as number) / shape(hour, true) - 1)).toBeLessThan(0.15);
    }
    // The profile of the whole day has the energy of the true one to 3 %.
    const energy = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
    const trueWeekday = Array.from({ length: 96 }, (_, s) => shape((s + 0.5) / 4, false));
    expect(energy(p.weekday) / energy(trueWeekday)).toBeCloseTo(1, 1);
  });

  it('keeps one profile until there are at least two days of each kind', () => {
    // Tuesday to Thursday only.
    const samples = household(now - 6 * DAY, now - 3 * DAY);
    const p = learnLoadProfile(samples, { stepMs: STEP, timeZone: BERLIN, now });
    expect(p.split).toBe(false);
    expect(p.days).toEqual({ weekday: 3, weekend: 0 });
    expect(p.weekend).toEqual(p.weekday);
  });

  it('weights recent days more (half-life)', () => {
    const from = now - 14 * DAY;
    const samples: PowerSample[] = [];
    for (let t = from; t < now; t += STEP) samples.push({ t, w: t < now - 7 * DAY ? 1000 : 2000 });
    const p = learnLoadProfile(samples, { stepMs: STEP, utcOffsetMinutes: 0, now, halfLifeDays: 7 });
    // Weights 2^(-age/7): the last week weighs twice the week before, so the mean is about 1000·1/3 + 2000·2/3.
    for (const v of [...p.weekday, ...p.weekend]) {
      expect(v).toBeGreaterThan(1550);
      expect(v).toBeLessThan(1780);
    }
    const flat = learnLoadProfile(samples, { stepMs: STEP, utcOffsetMinutes: 0, now, halfLifeDays: 1e9 });
    expect(flat.weekday[40]).toBeCloseTo(1500, 0);
  });

  it('interpolates slots that never had a sample from their neighbours, across midnight', () => {
    const samples: PowerSample[] = [];
    for (let d = 1; d <= 5; d++) {
      const day = Math.floor(now / DAY) * DAY - d * DAY; // UTC midnight
      samples.push({ t: day + 6 * HOUR, w: 600 }, { t: day + 18 * HOUR, w: 1800 });
    }
    const p = learnLoadProfile(samples, { stepMs: HOUR, utcOffsetMinutes: 0, now, minDaysPerKind: 10 });
    expect(p.weekday).toHaveLength(24);
    expect(p.interpolatedSlots).toBe(22);
    expect(p.weekday[6]).toBe(600);
    expect(p.weekday[12]).toBeCloseTo(1200, 9);
    expect(p.weekday[18]).toBe(1800);
    expect(p.weekday[0]).toBeCloseTo(1200, 9); // halfway from 18:00 around midnight to 06:00
    expect(p.weekday[3]).toBeCloseTo(900, 9);
  });

  it('learns by local time across the spring DST change', () => {
    // 14 days ending 2026-04-05 (DST began on 2026-03-29): a fixed offset would shift the later days by an hour.
    const end = Date.UTC(2026, 3, 5, 22);
    const samples = household(end - 14 * DAY, end, 3);
    const p = learnLoadProfile(samples, { stepMs: STEP, timeZone: BERLIN, now: end });
    const peakSlot = p.weekday.indexOf(Math.max(...p.weekday.slice(0, 48)));
    expect(peakSlot).toBeGreaterThanOrEqual(29); // 07:15 .. 07:45 local
    expect(peakSlot).toBeLessThanOrEqual(31);
    for (let slot = 0; slot < 96; slot++) {
      expect(Math.abs((p.weekday[slot] as number) / shape((slot + 0.5) / 4, false) - 1)).toBeLessThan(0.12);
    }
  });

  it('is empty without samples and refuses a step that does not divide a day', () => {
    const p = learnLoadProfile([], { stepMs: STEP, timeZone: BERLIN, now });
    expect(p.samples).toBe(0);
    expect(() => learnLoadProfile([], { stepMs: 7 * MIN, timeZone: BERLIN, now })).toThrow(/divide a day/);
  });
});

/** A profile with value = f(local slot), all days alike. */
function syntheticProfile(f: (slot: number) => number, stepMs = STEP, timeZone = BERLIN): LoadProfile {
  const values = Array.from({ length: DAY / stepMs }, (_, s) => f(s));
  return {
    stepMs,
    timeZone,
    utcOffsetMinutes: undefined,
    split: false,
    weekday: values,
    weekend: values,
    days: { weekday: 10, weekend: 4 },
    samples: 1344,
    interpolatedSlots: 0,
    historyDays: 14,
    halfLifeDays: 7,
  };
}

describe('forecastLoad', () => {
  const now = Date.UTC(2026, 4, 12, 10); // 12:00 in Berlin
  const horizon: Horizon = { start: now, stepMs: STEP, steps: 96 };

  it('adds the departure of the latest level to the profile and lets it fade with the time constant', () => {
    const profile = syntheticProfile(() => 1000);
    const recent = [
      { t: now - 30 * MIN, w: 1500 },
      { t: now - 15 * MIN, w: 1500 },
    ];
    const f = forecastLoad({
      horizon,
      profile,
      recent,
      now,
      options: { defaultLoadW: 2000, persistenceTauMs: 2 * HOUR, sampleSpanMs: STEP },
    });
    for (const i of [0, 3, 8, 24, 95]) {
      const lead = i * STEP + STEP / 2;
      expect(f.forecastW[i]).toBeCloseTo(1000 + 500 * Math.exp(-lead / (2 * HOUR)), 6);
    }
    expect(f.forecastW[0]).toBeGreaterThan(1450);
    expect(f.forecastW[60]).toBeLessThan(1001); // 15 h on: e^(-7.5) of the departure is left
    expect(f.basis).toContain('latest level 1500 W (+500 W vs the profile) fading with a 2 h time constant');
  });

  it('keeps the shape of the profile: a level on the profile changes nothing', () => {
    // 1000 W until 17:00 local, 3000 W from then on.
    const profile = syntheticProfile((s) => (s < 68 ? 1000 : 3000));
    const f = forecastLoad({
      horizon,
      profile,
      recent: [{ t: now - 15 * MIN, w: 1000 }],
      now,
      options: { defaultLoadW: 500, sampleSpanMs: STEP },
    });
    expect(f.forecastW[19]).toBeCloseTo(1000, 9); // 16:45 local
    expect(f.forecastW[20]).toBeCloseTo(3000, 9); // 17:00 local
  });

  it('persists below the profile and never forecasts a negative load', () => {
    const profile = syntheticProfile(() => 300);
    const f = forecastLoad({
      horizon,
      profile,
      recent: [{ t: now - 10 * MIN, w: -2000 }],
      now,
      options: { defaultLoadW: 500 },
    });
    expect(f.forecastW[0]).toBe(0);
    expect(Math.min(...f.forecastW)).toBeGreaterThanOrEqual(0);
    expect(f.forecastW[95]).toBeGreaterThan(290);
  });

  it('falls back to the default without history, and says so', () => {
    const f = forecastLoad({ horizon, profile: undefined, recent: [], now, options: { defaultLoadW: 2000 } });
    expect(f.forecastW).toEqual(new Array(96).fill(2000));
    expect(f.basis).toBe('no history: default 2000 W; no recent measurement to persist');
    const empty = learnLoadProfile([], { stepMs: STEP, timeZone: BERLIN, now });
    const g = forecastLoad({
      horizon,
      profile: empty,
      recent: [{ t: now - 5 * MIN, w: 3000 }],
      now,
      options: { defaultLoadW: 2000 },
    });
    // A recent level with no profile: it starts from the level and fades to the default.
    expect(g.forecastW[0]).toBeGreaterThan(2900);
    expect(g.forecastW[95]).toBeCloseTo(2000, 0);
    expect(g.basis).toContain('no history: default 2000 W; latest level 3000 W (+1000 W vs the default)');
  });

  it('does not persist a level older than maxLevelAgeMs', () => {
    const profile = syntheticProfile(() => 1000);
    const f = forecastLoad({
      horizon,
      profile,
      recent: [{ t: now - 90 * MIN, w: 5000 }],
      now,
      options: { defaultLoadW: 500, levelWindowMs: 2 * HOUR, maxLevelAgeMs: HOUR },
    });
    expect(f.forecastW[0]).toBe(1000);
    expect(f.basis).toContain('no recent measurement');
  });

  it('looks the profile up by local time on the DST change days', () => {
    const profile = syntheticProfile((s) => Math.floor(s / 4) * 100); // 100 W per local hour
    const at = (start: number) =>
      forecastLoad({
        horizon: { start, stepMs: STEP, steps: 16 },
        profile,
        recent: [],
        now: start,
        options: { defaultLoadW: 0 },
      }).forecastW;
    // Spring: 2026-03-29 00:00 UTC is 01:00 CET; 01:00 UTC is already 03:00 CEST (02:xx never happens).
    const spring = at(Date.UTC(2026, 2, 29, 0));
    expect(spring.slice(0, 4)).toEqual([100, 100, 100, 100]);
    expect(spring.slice(4, 8)).toEqual([300, 300, 300, 300]);
    expect(spring.slice(8, 12)).toEqual([400, 400, 400, 400]);
    // Autumn: 2026-10-25 00:00 UTC is 02:00 CEST, 01:00 UTC is 02:00 CET again, then 03:00.
    const autumn = at(Date.UTC(2026, 9, 25, 0));
    expect(autumn.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(autumn.slice(4, 8)).toEqual([200, 200, 200, 200]);
    expect(autumn.slice(8, 12)).toEqual([300, 300, 300, 300]);
    // Ordinary summer day: UTC+2.
    expect(at(Date.UTC(2026, 6, 1, 10))[0]).toBe(1200);
  });

  it('uses the weekend profile on weekend days', () => {
    const weekdays = syntheticProfile(() => 1000);
    const profile: LoadProfile = { ...weekdays, split: true, weekend: weekdays.weekday.map(() => 2000) };
    const saturday = Date.UTC(2026, 4, 16, 10);
    const friday = Date.UTC(2026, 4, 15, 10);
    const one = (start: number) =>
      forecastLoad({
        horizon: { start, stepMs: STEP, steps: 1 },
        profile,
        recent: [],
        now: start,
        options: { defaultLoadW: 0 },
      }).forecastW[0];
    expect(one(friday)).toBe(1000);
    expect(one(saturday)).toBe(2000);
    // Sunday 23:30 UTC is Monday 01:30 in Berlin: a weekday.
    expect(one(Date.UTC(2026, 4, 17, 23, 30))).toBe(1000);
    expect(profileAt(profile, Date.UTC(2026, 4, 17, 21, 30))).toBe(2000);
  });
});
