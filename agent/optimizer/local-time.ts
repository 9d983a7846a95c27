/**
 * Local wall-clock time of an instant for tariffs, load windows and departures, which are written in local time while
 * the optimizer's horizon is UTC. The DST arithmetic and its cache are the forecasts' LocalTime; this adds the
 * Monday-first weekday tariffs use and the search for the next local time of day.
 */
import { LocalTime } from './forecast/load.js';

export interface LocalTimeOfDay {
  /** 0 = Monday … 6 = Sunday. */
  readonly weekday: number;
  /** Minutes since local midnight, 0-1439. */
  readonly minuteOfDay: number;
}

export class LocalClock {
  private readonly local: LocalTime;

  /** Throws a RangeError naming the zone when it is not a known IANA zone. */
  constructor(readonly timeZone: string) {
    this.local = new LocalTime({ timeZone });
  }

  at(ms: number): LocalTimeOfDay {
    const p = this.local.parts(ms);
    return { weekday: (p.weekday + 6) % 7, minuteOfDay: Math.floor(p.msOfDay / 60_000) };
  }

  /**
   * The next instant at or after `from` whose local time is `hhmm`. A time the DST spring-forward skips that day
   * resolves to the same time the next day.
   */
  nextAt(from: number, hhmm: string): number {
    const target = minutesOf(hhmm) % 1440;
    let t = Math.ceil(from / 60_000) * 60_000;
    for (let i = 0; i < 6; i++) {
      const ahead = (target - this.at(t).minuteOfDay + 1440) % 1440;
      if (ahead === 0) return t;
      t += ahead * 60_000;
    }
    return t;
  }
}

/** "HH:MM" → minutes since midnight (24:00 → 1440). */
export function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

/** Whether local minute `m` lies in [from, to), wrapping past midnight when to <= from. */
export function inWindow(m: number, from: string, to: string): boolean {
  const a = minutesOf(from);
  const b = minutesOf(to);
  return a < b ? m >= a && m < b : m >= a || m < b;
}
