/**
 * Local wall-clock time of an instant in an IANA time zone: tariffs, load windows and departures are written in
 * local time, while the optimizer's horizon is UTC. Intl does the DST arithmetic; one formatter per zone is kept by
 * the caller-owned cache, not a module singleton.
 */

export interface LocalTime {
  /** 0 = Monday … 6 = Sunday. */
  readonly weekday: number;
  /** Minutes since local midnight, 0-1439. */
  readonly minuteOfDay: number;
  /** Local calendar date, YYYY-MM-DD. */
  readonly date: string;
}

const WEEKDAYS: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

export class LocalClock {
  private readonly format: Intl.DateTimeFormat;

  /** Throws a RangeError naming the zone when it is not a known IANA zone. */
  constructor(readonly timeZone: string) {
    try {
      this.format = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        weekday: 'short',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
      });
    } catch {
      throw new RangeError(`unknown time zone '${timeZone}' (use an IANA name such as Europe/Berlin)`);
    }
  }

  at(ms: number): LocalTime {
    const parts: Record<string, string> = {};
    for (const p of this.format.formatToParts(new Date(ms))) parts[p.type] = p.value;
    return {
      weekday: WEEKDAYS[parts.weekday ?? 'Mon'] ?? 0,
      minuteOfDay: Number(parts.hour) * 60 + Number(parts.minute),
      date: `${parts.year}-${parts.month}-${parts.day}`,
    };
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
